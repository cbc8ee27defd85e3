//! API Priority and Fairness: the defaults (`defaults`); more analyses come with apftop.

pub mod defaults;
