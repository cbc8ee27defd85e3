//! The revision of a snapshot read as it streams by, for saves that store it transformed
//! (compressed) and so cannot open the stored file as a database afterwards.
//!
//! Every page boundary's header is read as the bytes pass. The pages a lookup of the `key`
//! bucket's last key can need are kept: the meta pages, branch pages, leaves that hold buckets;
//! of every other leaf only its last key, re-encoded as a one-element leaf (a few dozen bytes per
//! 4 KiB page). Then `Db::last_key` runs on them from the snapshot's own meta page, exactly as on
//! a file. Free pages are read too (a stream cannot tell them apart), which is harmless: nothing
//! reachable from the meta points at them. The bytes of one page are read at every boundary,
//! never skipped by a header's overflow count, so a stale header cannot hide a live page.

use std::collections::HashMap;

use super::bbolt::{BRANCH, BUCKET_LEAF_FLAG, Db, ELEMENT, LEAF, META, PAGE_HEADER, u16_at, u32_at};

/// A page longer than this (with its overflow) is not kept: etcd's values are bounded by its
/// request size limit (1.5 MiB by default), so only a free page's stale header claims more.
const LONGEST_KEPT_SPAN: u64 = 64 << 20;

/// Watches a snapshot's bytes in order; `revision` answers at the end.
#[derive(Default)]
pub struct StreamIndex {
    page_size: Option<u64>,
    /// Bytes held from `window_start` on: from the oldest page still waiting for its overflow.
    window: Vec<u8>,
    window_start: u64,
    /// Offset of the next page boundary to read.
    next_page: u64,
    /// Pages whose span has not arrived whole: (id, end offset).
    waiting: Vec<(u64, u64)>,
    pages: HashMap<u64, Vec<u8>>,
    /// Not a bbolt file (no page size in the first meta): no revision.
    unreadable: bool,
}

impl StreamIndex {
    /// Takes the next bytes of the database (not etcd's digest after it).
    pub fn feed(&mut self, bytes: &[u8]) {
        if self.unreadable {
            return;
        }
        self.window.extend_from_slice(bytes);
        let end = self.window_start + self.window.len() as u64;
        let Some(ps) = self.page_size.or_else(|| self.read_page_size()) else { return };
        while self.next_page + ps <= end {
            let at = (self.next_page - self.window_start) as usize;
            let head = &self.window[at..at + PAGE_HEADER];
            let flags = u16_at(head, 8);
            let span = (u64::from(u32_at(head, 12)) + 1) * ps;
            if matches!(flags, META | BRANCH | LEAF) && (flags != META || span == ps) && span <= LONGEST_KEPT_SPAN {
                self.waiting.push((self.next_page / ps, self.next_page + span));
            }
            self.next_page += ps;
        }
        self.keep_complete(end, ps);
        // Drop what no waiting page and no unread boundary needs.
        let keep_from = self.waiting.iter().map(|(id, _)| id * ps).min().unwrap_or(self.next_page).min(self.next_page);
        let drop = (keep_from - self.window_start) as usize;
        if drop > 0 {
            self.window.drain(..drop);
            self.window_start = keep_from;
        }
    }

    /// The page size, from the first meta page once its header and body have arrived.
    fn read_page_size(&mut self) -> Option<u64> {
        if self.window.len() < PAGE_HEADER + 16 {
            return None;
        }
        let ps = u64::from(u32_at(&self.window, PAGE_HEADER + 8));
        if u16_at(&self.window, 8) != META || !(512..=1 << 20).contains(&ps) || !ps.is_power_of_two() {
            self.unreadable = true;
            self.window = Vec::new();
            return None;
        }
        self.page_size = Some(ps);
        Some(ps)
    }

    fn keep_complete(&mut self, end: u64, ps: u64) {
        let (done, still): (Vec<_>, Vec<_>) = self.waiting.drain(..).partition(|(_, e)| *e <= end);
        self.waiting = still;
        for (id, span_end) in done {
            let from = (id * ps - self.window_start) as usize;
            let page = &self.window[from..(span_end - self.window_start) as usize];
            if let Some(kept) = summary(page) {
                self.pages.insert(id, kept);
            }
        }
    }

    /// The main revision of the last key of the `key` bucket (what `snapshot status` reports),
    /// or None when the bytes were not a whole bbolt database of `db_size` bytes.
    pub fn revision(self, db_size: u64) -> Option<i64> {
        let ps = self.page_size?;
        let db = Db::from_pages(self.pages, ps, db_size).ok()?;
        let key = db.last_key(b"key").ok()??;
        Some(i64::from_be_bytes(key.get(..8)?.try_into().ok()?))
    }
}

/// What to keep of a page: metas, branches and leaves holding buckets whole; of other leaves a
/// one-element leaf with the last key (same id, no overflow). None for a malformed leaf.
fn summary(page: &[u8]) -> Option<Vec<u8>> {
    if u16_at(page, 8) != LEAF {
        return Some(page.to_vec());
    }
    let count = u16_at(page, 10) as usize;
    if page.len() < PAGE_HEADER + count * ELEMENT {
        return None;
    }
    let holds_buckets = (0..count).any(|i| u32_at(page, PAGE_HEADER + i * ELEMENT) & BUCKET_LEAF_FLAG != 0);
    if holds_buckets {
        return Some(page.to_vec());
    }
    let mut kept = page[..PAGE_HEADER].to_vec();
    kept[12..16].copy_from_slice(&0u32.to_le_bytes());
    if count == 0 {
        return Some(kept);
    }
    let at = PAGE_HEADER + (count - 1) * ELEMENT;
    let (pos, ksize) = (u32_at(page, at + 4) as usize, u32_at(page, at + 8) as usize);
    let key = page.get(at.checked_add(pos)?..at.checked_add(pos)?.checked_add(ksize)?)?;
    kept[10..12].copy_from_slice(&1u16.to_le_bytes());
    for field in [0u32, ELEMENT as u32, ksize as u32, 0] {
        kept.extend_from_slice(&field.to_le_bytes());
    }
    kept.extend_from_slice(key);
    Some(kept)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A snapshot etcd 3.6.16 wrote (fuzz/corpus/snapshot/etcd-3.6.16-two-live-keys.db), fed in
    /// pieces of every awkward size: the revision equals the one read from the file.
    #[test]
    fn the_revision_of_a_stream_is_the_files() {
        let bytes = crate::test_files::bytes("fuzz/corpus/snapshot/etcd-3.6.16-two-live-keys.db");
        let db_size = bytes.len() as u64 - 32; // etcd's sha256 after the pages
        let db = Db::from_bytes(bytes[..db_size as usize].to_vec()).unwrap();
        let key = db.last_key(b"key").unwrap().unwrap();
        let want = i64::from_be_bytes(key[..8].try_into().unwrap());
        assert!(want > 1, "{want}");
        for piece in [1, 7, 100, 4095, 4096, 4097, 12_000, bytes.len()] {
            let mut index = StreamIndex::default();
            for chunk in bytes[..db_size as usize].chunks(piece) {
                index.feed(chunk);
            }
            assert!(index.window.len() <= 4096, "pieces of {piece}: {} bytes held", index.window.len());
            assert_eq!(index.revision(db_size), Some(want), "pieces of {piece}");
        }
    }

    #[test]
    fn what_is_not_a_whole_database_has_no_revision() {
        let mut index = StreamIndex::default();
        index.feed(&[0x42; 10_000]);
        assert_eq!(index.revision(10_000), None);
        // Cut: the meta page promises more pages than arrived.
        let bytes = crate::test_files::bytes("fuzz/corpus/snapshot/etcd-3.6.16-two-live-keys.db");
        let mut index = StreamIndex::default();
        index.feed(&bytes[..8192]);
        assert_eq!(index.revision(8192), None);
    }
}
