//! A read-only bbolt reader (go.etcd.io/bbolt `page.go`, `db.go`): the two meta pages, then every bucket's B+tree in
//! key order, one page at a time with positioned reads — memory stays a few pages deep however
//! big the file is. The walk checks the structure like `tx.Check()`: page ids in bounds, page
//! types, no page reached twice, keys in order, and (with a freelist page) every page below the
//! high-water mark either reachable or free.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

const MAGIC: u32 = 0xED0C_DAED;
const VERSION: u32 = 2;
pub(super) const PAGE_HEADER: usize = 16;
pub(super) const ELEMENT: usize = 16;
pub(super) const BRANCH: u16 = 0x01;
pub(super) const LEAF: u16 = 0x02;
pub(super) const META: u16 = 0x04;
const FREELIST: u16 = 0x10;
pub(super) const BUCKET_LEAF_FLAG: u32 = 0x01;
const NO_FREELIST: u64 = u64::MAX;

/// What is wrong with a file, precisely.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormatError(pub String);

impl std::fmt::Display for FormatError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

type Result<T> = std::result::Result<T, FormatError>;

fn err<T>(text: impl Into<String>) -> Result<T> {
    Err(FormatError(text.into()))
}

pub(super) fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

pub(super) fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

/// FNV-1a 64, bbolt's meta checksum.
fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// A meta page's content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    pub page_size: u32,
    pub root: u64,
    pub freelist: u64,
    /// The high-water mark: pages `0..pgid` are in use or free.
    pub pgid: u64,
    pub txid: u64,
}

fn parse_meta(page: &[u8]) -> Result<Meta> {
    if page.len() < PAGE_HEADER + 64 {
        return err("the file is too short for a bbolt meta page");
    }
    let m = &page[PAGE_HEADER..];
    if u32_at(m, 0) != MAGIC {
        return err("not a bbolt database (bad magic)");
    }
    if u32_at(m, 4) != VERSION {
        return err(format!("unsupported bbolt version {}", u32_at(m, 4)));
    }
    if u64_at(m, 56) != fnv1a64(&m[..56]) {
        return err("meta page checksum mismatch");
    }
    Ok(Meta {
        page_size: u32_at(m, 8),
        root: u64_at(m, 16),
        freelist: u64_at(m, 32),
        pgid: u64_at(m, 40),
        txid: u64_at(m, 48),
    })
}

/// An open database file, read a page at a time with positioned reads (no mapping: a file cut
/// while it is read gives an error, not a SIGBUS).
pub struct Db {
    backing: Backing,
    pub file_size: u64,
    pub meta: Meta,
}

/// Where the pages come from: a file, bytes in memory (fuzzing, tests), or the pages a stream
/// kept by id (`super::stream_index`; a page it did not keep reads as zeros, which fails the
/// page's own id check).
enum Backing {
    File(File),
    Bytes(Vec<u8>),
    Pages { pages: std::collections::HashMap<u64, Vec<u8>>, page_size: u64 },
}

impl Backing {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        match self {
            Backing::File(f) => f.read_exact_at(buf, offset),
            Backing::Bytes(b) => {
                let start = usize::try_from(offset).map_err(|_| std::io::ErrorKind::UnexpectedEof)?;
                let end = start.checked_add(buf.len()).ok_or(std::io::ErrorKind::UnexpectedEof)?;
                let src = b.get(start..end).ok_or(std::io::ErrorKind::UnexpectedEof)?;
                buf.copy_from_slice(src);
                Ok(())
            }
            Backing::Pages { pages, page_size } => {
                let mut done = 0usize;
                while done < buf.len() {
                    let at = offset + done as u64;
                    let (id, within) = (at / page_size, (at % page_size) as usize);
                    let n = (*page_size as usize - within).min(buf.len() - done);
                    let out = &mut buf[done..done + n];
                    out.fill(0);
                    if let Some(kept) = pages.get(&id).and_then(|p| p.get(within..)) {
                        let m = kept.len().min(n);
                        out[..m].copy_from_slice(&kept[..m]);
                    }
                    done += n;
                }
                Ok(())
            }
        }
    }
}

/// One key/value of a bucket (`is_bucket` for nested buckets, whose value is their header).
pub struct Item<'a> {
    pub key: &'a [u8],
    pub value: &'a [u8],
    pub is_bucket: bool,
}

/// Called with each top-level bucket's name, once with no item, then with each of its items.
pub type BucketVisitor<'v> = dyn FnMut(&[u8], Option<&Item<'_>>) -> Result<()> + 'v;

/// What the walk found besides the items.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WalkStats {
    pub pages_reached: u64,
    pub free_pages: u64,
}

impl Db {
    pub fn open(path: &Path) -> std::result::Result<Db, std::io::Error> {
        let file = File::open(path)?;
        let file_size = file.metadata()?.len();
        Db::with_backing(Backing::File(file), file_size)
    }

    /// A database held in memory.
    pub fn from_bytes(bytes: Vec<u8>) -> std::result::Result<Db, std::io::Error> {
        let size = bytes.len() as u64;
        Db::with_backing(Backing::Bytes(bytes), size)
    }

    /// A database of which only `pages` (by id, one page each) are known; `size` is the
    /// file's. Enough for `last_key` when they hold its path from the meta pages down.
    pub(super) fn from_pages(
        pages: std::collections::HashMap<u64, Vec<u8>>,
        page_size: u64,
        size: u64,
    ) -> std::result::Result<Db, std::io::Error> {
        Db::with_backing(Backing::Pages { pages, page_size }, size)
    }

    fn with_backing(backing: Backing, file_size: u64) -> std::result::Result<Db, std::io::Error> {
        let meta = Db::pick_meta(&backing, file_size)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e.0))?;
        Ok(Db { backing, file_size, meta })
    }

    /// The valid meta with the higher txid (bbolt's rule), reading the page size from page 0.
    fn pick_meta(file: &Backing, size: u64) -> Result<Meta> {
        let mut first = vec![0u8; 4096.min(size as usize)];
        file.read_exact_at(&mut first, 0).map_err(|e| FormatError(format!("cannot read the first page: {e}")))?;
        let meta0 = parse_meta(&first);
        let page_size = match &meta0 {
            Ok(m) => u64::from(m.page_size),
            Err(_) => 4096,
        };
        let sizes: Vec<u64> = if meta0.is_ok() { vec![page_size] } else { vec![4096, 8192, 16384, 65536] };
        let mut meta1 = err("the second meta page is missing");
        for ps in sizes {
            if size < ps + PAGE_HEADER as u64 + 64 {
                continue;
            }
            let mut second = vec![0u8; PAGE_HEADER + 64];
            if file.read_exact_at(&mut second, ps).is_ok() {
                meta1 = parse_meta(&second);
                if meta1.is_ok() {
                    break;
                }
            }
        }
        let meta = match (meta0, meta1) {
            (Ok(a), Ok(b)) => {
                if b.txid > a.txid {
                    b
                } else {
                    a
                }
            }
            (Ok(a), Err(_)) => a,
            (Err(_), Ok(b)) => b,
            (Err(a), Err(_)) => return Err(a),
        };
        if !(512..=1 << 20).contains(&meta.page_size) || !meta.page_size.is_power_of_two() {
            return err(format!("implausible page size {}", meta.page_size));
        }
        // Two meta pages, the freelist and a root at the least (bbolt's `init`).
        if meta.pgid < 4 {
            return err(format!("implausible high water mark of {} pages", meta.pgid));
        }
        if meta.root < 2 || meta.root >= meta.pgid {
            return err(format!("the root bucket's page {} is outside pages 2..{}", meta.root, meta.pgid));
        }
        let needed = meta.pgid.saturating_mul(u64::from(meta.page_size));
        if needed > size {
            return err(format!(
                "truncated: the meta page says {} pages ({} bytes) but the file has {} bytes",
                meta.pgid, needed, size
            ));
        }
        Ok(meta)
    }

    /// `tx.Size()`: the database size as bbolt counts it.
    pub fn total_size(&self) -> u64 {
        self.meta.pgid * u64::from(self.meta.page_size)
    }

    /// Page `id` with its overflow pages.
    fn page(&self, id: u64) -> Result<Vec<u8>> {
        if id >= self.meta.pgid {
            return err(format!("page {id}: out of bounds (high water mark {})", self.meta.pgid));
        }
        let ps = self.meta.page_size as usize;
        if let Backing::Pages { pages, .. } = &self.backing {
            // Kept whole with its overflow, under its own id.
            let mut page = pages.get(&id).cloned().unwrap_or_default();
            if page.len() < ps {
                page.resize(ps, 0);
            }
            if u64_at(&page, 0) != id {
                return err(format!("page {id}: not among the pages kept from the stream"));
            }
            return Ok(page);
        }
        let start = id * ps as u64;
        let mut head = vec![0u8; ps];
        self.read_at(&mut head, start, id)?;
        let overflow = u64::from(u32_at(&head, 12));
        if overflow > 0 && id.checked_add(overflow).is_none_or(|end| end >= self.meta.pgid) {
            return err(format!("page {id}: overflow of {overflow} pages runs past the end"));
        }
        if u64_at(&head, 0) != id {
            return err(format!("page {id}: its header says page {}", u64_at(&head, 0)));
        }
        if overflow == 0 {
            return Ok(head);
        }
        let total =
            (overflow as usize + 1).checked_mul(ps).ok_or_else(|| FormatError(format!("page {id}: too large")))?;
        let mut page = head;
        page.resize(total, 0);
        self.read_at(&mut page[ps..], start + ps as u64, id)?;
        Ok(page)
    }

    fn read_at(&self, buf: &mut [u8], offset: u64, id: u64) -> Result<()> {
        self.backing.read_exact_at(buf, offset).map_err(|e| {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                FormatError(format!("page {id}: past the end of the file (did it shrink while being read?)"))
            } else {
                FormatError(format!("page {id}: cannot be read: {e}"))
            }
        })
    }

    /// The free pages of the freelist page (empty when the database keeps none on disk).
    fn free_pages(&self) -> Result<Vec<u64>> {
        if self.meta.freelist == NO_FREELIST {
            return Ok(Vec::new());
        }
        let buf = self.page(self.meta.freelist)?;
        if u16_at(&buf, 8) != FREELIST {
            return err(format!(
                "page {}: expected the freelist, found flags {:#x}",
                self.meta.freelist,
                u16_at(&buf, 8)
            ));
        }
        let mut count = u64::from(u16_at(&buf, 10));
        let mut start = PAGE_HEADER;
        if count == 0xFFFF {
            count = u64_at(&buf, PAGE_HEADER);
            start += 8;
        }
        let fits =
            count.checked_mul(8).and_then(|n| n.checked_add(start as u64)).is_some_and(|end| end <= buf.len() as u64);
        if !fits {
            return err(format!("freelist page: {count} entries run past the page"));
        }
        Ok((0..count as usize).map(|i| u64_at(&buf, start + i * 8)).collect())
    }

    /// Visits every top-level bucket and its items in key order: `visit(bucket, item)`, with
    /// `item` None once per bucket before its items. Checks the structure on the way.
    pub fn walk(&self, visit: &mut BucketVisitor<'_>) -> Result<WalkStats> {
        let pages = self.meta.pgid as usize;
        let mut reached = self.unreached();
        let mark = |reached: &mut Vec<u64>, id: u64, overflow: u64| -> Result<()> {
            for p in id..=id + overflow {
                let (w, b) = ((p / 64) as usize, p % 64);
                if reached[w] & (1 << b) != 0 {
                    return err(format!("page {p}: multiple references"));
                }
                reached[w] |= 1 << b;
            }
            Ok(())
        };
        mark(&mut reached, 0, 0)?;
        if pages > 1 {
            mark(&mut reached, 1, 0)?;
        }
        let free = self.free_pages()?;
        if self.meta.freelist != NO_FREELIST {
            let buf = self.page(self.meta.freelist)?;
            mark(&mut reached, self.meta.freelist, u64::from(u32_at(&buf, 12)))?;
        }
        let mut stats = WalkStats { free_pages: free.len() as u64, ..Default::default() };
        // The root bucket: its items are the top-level buckets.
        let mut top: Vec<(Vec<u8>, u64, Option<Vec<u8>>)> = Vec::new();
        self.walk_tree(Source::Page(self.meta.root), 0, &mut reached, &mut |item| {
            if !item.is_bucket {
                return err(format!("the root bucket holds a plain key {:?}", String::from_utf8_lossy(item.key)));
            }
            let (root, inline) = bucket_header(item.value)?;
            top.push((item.key.to_vec(), root, inline.map(<[u8]>::to_vec)));
            Ok(())
        })?;
        for (name, root, inline) in &top {
            visit(name, None)?;
            let source = match inline {
                Some(page) => Source::Inline(page.clone()),
                None => Source::Page(*root),
            };
            self.walk_tree(source, 0, &mut reached, &mut |item| visit(name, Some(item)))?;
        }
        for &f in &free {
            if f >= self.meta.pgid {
                return err(format!("freelist names page {f}, past the high water mark {}", self.meta.pgid));
            }
            let (w, b) = ((f / 64) as usize, f % 64);
            if reached[w] & (1 << b) != 0 {
                return err(format!("page {f}: reachable but also free"));
            }
            reached[w] |= 1 << b;
        }
        stats.pages_reached = reached.iter().map(|w| u64::from(w.count_ones())).sum::<u64>() - stats.free_pages;
        if self.meta.freelist == NO_FREELIST {
            // No freelist on disk (etcd's NoFreelistSync): bbolt treats unreachable pages as free.
            stats.free_pages = self.meta.pgid - stats.pages_reached;
        }
        if self.meta.freelist != NO_FREELIST
            && let Some(missing) = (0..self.meta.pgid).find(|&p| reached[(p / 64) as usize] & (1 << (p % 64)) == 0)
        {
            return err(format!("page {missing}: unreachable unfreed"));
        }
        Ok(stats)
    }

    /// Visits a bucket's tree in key order, checking what bbolt's `tx.Check()` checks: pages in
    /// bounds and reached once, page types, keys strictly increasing, and every key within its
    /// ancestors' range `[min, max)` (bbolt `tx_check.go`, `recursivelyCheckPageKeyOrder`).
    fn walk_tree(
        &self,
        source: Source,
        depth: usize,
        reached: &mut Vec<u64>,
        visit: &mut dyn FnMut(&Item<'_>) -> Result<()>,
    ) -> Result<()> {
        self.walk_range(source, depth, None, None, reached, visit)
    }

    fn walk_range(
        &self,
        source: Source,
        depth: usize,
        min: Option<&[u8]>,
        max: Option<&[u8]>,
        reached: &mut Vec<u64>,
        visit: &mut dyn FnMut(&Item<'_>) -> Result<()>,
    ) -> Result<()> {
        if depth > 64 {
            return err("the tree is deeper than 64 levels (a reference cycle?)");
        }
        let (page, where_) = match source {
            Source::Inline(bytes) => (bytes, "inline bucket".to_string()),
            Source::Page(id) => {
                let buf = self.page(id)?;
                let overflow = u64::from(u32_at(&buf, 12));
                for p in id..=id + overflow {
                    let (w, b) = ((p / 64) as usize, p % 64);
                    let word = reached.get_mut(w).ok_or_else(|| FormatError(format!("page {p}: out of bounds")))?;
                    if *word & (1 << b) != 0 {
                        return err(format!("page {p}: multiple references"));
                    }
                    *word |= 1 << b;
                }
                (buf, format!("page {id}"))
            }
        };
        if page.len() < PAGE_HEADER {
            return err(format!("{where_}: shorter than a page header"));
        }
        let flags = u16_at(&page, 8);
        let count = u16_at(&page, 10) as usize;
        if PAGE_HEADER + count * ELEMENT > page.len() {
            return err(format!("{where_}: {count} elements do not fit"));
        }
        let in_range = |i: usize, key: &[u8], previous: Option<&[u8]>| -> Result<()> {
            if previous.is_some_and(|p| p >= key) {
                return err(format!("{where_}: keys out of order"));
            }
            if i == 0 && min.is_some_and(|m| key < m) {
                return err(format!("{where_}: its first key is below its ancestor's key"));
            }
            if max.is_some_and(|m| key >= m) {
                return err(format!("{where_}: a key is not below the next key of its ancestor"));
            }
            Ok(())
        };
        let element = |i: usize| -> Result<(usize, usize, usize)> {
            let at = PAGE_HEADER + i * ELEMENT;
            Ok((at, u32_at(&page, at + 4) as usize, u32_at(&page, at + 8) as usize))
        };
        match flags {
            BRANCH => {
                let mut keys: Vec<(&[u8], u64)> = Vec::with_capacity(count);
                for i in 0..count {
                    let at = PAGE_HEADER + i * ELEMENT;
                    let (pos, ksize, child) =
                        (u32_at(&page, at) as usize, u32_at(&page, at + 4) as usize, u64_at(&page, at + 8));
                    let key = page
                        .get(at + pos..at + pos + ksize)
                        .ok_or_else(|| FormatError(format!("{where_}: element {i} points outside the page")))?;
                    in_range(i, key, keys.last().map(|k| k.0))?;
                    keys.push((key, child));
                }
                for i in 0..keys.len() {
                    let upper = keys.get(i + 1).map(|k| k.0).or(max);
                    self.walk_range(Source::Page(keys[i].1), depth + 1, Some(keys[i].0), upper, reached, visit)?;
                }
            }
            LEAF => {
                let mut previous: Option<&[u8]> = None;
                for i in 0..count {
                    let (at, pos, ksize) = element(i)?;
                    let (eflags, vsize) = (u32_at(&page, at), u32_at(&page, at + 12) as usize);
                    let start = at + pos;
                    let (key, value) =
                        match (page.get(start..start + ksize), page.get(start + ksize..start + ksize + vsize)) {
                            (Some(k), Some(v)) => (k, v),
                            _ => return err(format!("{where_}: element {i} points outside the page")),
                        };
                    in_range(i, key, previous)?;
                    previous = Some(key);
                    visit(&Item { key, value, is_bucket: eflags & BUCKET_LEAF_FLAG != 0 })?;
                }
            }
            META | FREELIST => {
                return err(format!(
                    "{where_}: a {} page inside a bucket tree",
                    if flags == META { "meta" } else { "freelist" }
                ));
            }
            other => return err(format!("{where_}: invalid page type {other:#x}")),
        }
        Ok(())
    }

    /// The last key of the top-level bucket `name`, found by following the rightmost branch
    /// down (a few pages, whatever the file's size). None when the bucket is missing or empty.
    pub fn last_key(&self, name: &[u8]) -> Result<Option<Vec<u8>>> {
        let mut root = match self.find_bucket(name, &mut self.unreached())? {
            None => return Ok(None),
            Some(Source::Inline(page)) => return Ok(last_leaf_key(&page, "inline bucket")?.map(<[u8]>::to_vec)),
            Some(Source::Page(root)) => root,
        };
        for _ in 0..64 {
            let page = self.page(root)?;
            let where_ = format!("page {root}");
            match u16_at(&page, 8) {
                BRANCH => {
                    let count = u16_at(&page, 10) as usize;
                    if count == 0 || PAGE_HEADER + count * ELEMENT > page.len() {
                        return err(format!("{where_}: a branch page with {count} elements"));
                    }
                    root = u64_at(&page, PAGE_HEADER + (count - 1) * ELEMENT + 8);
                }
                LEAF => return Ok(last_leaf_key(&page, &where_)?.map(<[u8]>::to_vec)),
                other => return err(format!("{where_}: invalid page type {other:#x} in a bucket tree")),
            }
        }
        err("the tree is deeper than 64 levels (a reference cycle?)")
    }

    /// One bit a page, none set: which pages a walk has reached.
    fn unreached(&self) -> Vec<u64> {
        vec![0u64; (self.meta.pgid as usize).div_ceil(64)]
    }

    /// Where the top-level bucket `name` keeps its items: its root page, or inline.
    fn find_bucket(&self, name: &[u8], reached: &mut Vec<u64>) -> Result<Option<Source>> {
        let mut found = None;
        self.walk_tree(Source::Page(self.meta.root), 0, reached, &mut |item| {
            if item.key == name && item.is_bucket {
                found = Some(match bucket_header(item.value)? {
                    (_, Some(page)) => Source::Inline(page.to_vec()),
                    (root, None) => Source::Page(root),
                });
            }
            Ok(())
        })?;
        Ok(found)
    }
}

enum Source {
    Page(u64),
    Inline(Vec<u8>),
}

/// The last key of a leaf page (None when it has no elements).
fn last_leaf_key<'p>(page: &'p [u8], where_: &str) -> Result<Option<&'p [u8]>> {
    if page.len() < PAGE_HEADER {
        return err(format!("{where_}: shorter than a page header"));
    }
    let count = u16_at(page, 10) as usize;
    if count == 0 {
        return Ok(None);
    }
    let at = PAGE_HEADER + (count - 1) * ELEMENT;
    if at + ELEMENT > page.len() {
        return err(format!("{where_}: {count} elements do not fit"));
    }
    let (pos, ksize) = (u32_at(page, at + 4) as usize, u32_at(page, at + 8) as usize);
    let start = at.checked_add(pos).ok_or_else(|| FormatError(format!("{where_}: element offset overflows")))?;
    page.get(start..start.saturating_add(ksize))
        .map(Some)
        .ok_or_else(|| FormatError(format!("{where_}: its last element points outside the page")))
}

/// A bucket value: `{root u64, sequence u64}`, and for root 0 the inline page after it.
fn bucket_header(value: &[u8]) -> Result<(u64, Option<&[u8]>)> {
    if value.len() < 16 {
        return err("a bucket header is shorter than 16 bytes");
    }
    let root = u64_at(value, 0);
    Ok((root, (root == 0).then(|| &value[16..])))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv_matches_the_reference_vectors() {
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn garbage_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.db");
        std::fs::write(&p, vec![7u8; 10_000]).unwrap();
        let e = Db::open(&p).err().unwrap();
        assert!(e.to_string().contains("not a bbolt database"), "{e}");
        std::fs::write(&p, b"short").unwrap();
        assert!(Db::open(&p).is_err());
    }

    const PS: usize = 4096;

    /// A meta page's 64 bytes after the header, with its checksum.
    fn meta_bytes(root: u64, freelist: u64, pgid: u64, txid: u64) -> Vec<u8> {
        let mut m = Vec::new();
        m.extend_from_slice(&MAGIC.to_le_bytes());
        m.extend_from_slice(&VERSION.to_le_bytes());
        m.extend_from_slice(&(PS as u32).to_le_bytes());
        m.extend_from_slice(&0u32.to_le_bytes());
        m.extend_from_slice(&root.to_le_bytes());
        m.extend_from_slice(&0u64.to_le_bytes());
        m.extend_from_slice(&freelist.to_le_bytes());
        m.extend_from_slice(&pgid.to_le_bytes());
        m.extend_from_slice(&txid.to_le_bytes());
        let sum = fnv1a64(&m);
        m.extend_from_slice(&sum.to_le_bytes());
        m
    }

    fn page(id: u64, flags: u16, count: u16, body: &[u8]) -> Vec<u8> {
        let mut p = vec![0u8; PS];
        p[0..8].copy_from_slice(&id.to_le_bytes());
        p[8..10].copy_from_slice(&flags.to_le_bytes());
        p[10..12].copy_from_slice(&count.to_le_bytes());
        p[16..16 + body.len()].copy_from_slice(body);
        p
    }

    /// The smallest bbolt file: two metas, an empty freelist (page 2), an empty root (page 3),
    /// with `pgid` as the metas' high-water mark.
    fn tiny(pgid: u64, freelist_page: Vec<u8>) -> Vec<u8> {
        let mut f = page(0, META, 0, &meta_bytes(3, 2, pgid, 1));
        f.extend(page(1, META, 0, &meta_bytes(3, 2, pgid, 0)));
        f.extend(freelist_page);
        f.extend(page(3, LEAF, 0, &[]));
        f
    }

    fn open_bytes(bytes: &[u8]) -> std::io::Result<Db> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.db");
        std::fs::write(&p, bytes).unwrap();
        Db::open(&p)
    }

    #[test]
    fn a_minimal_database_reads() {
        let db = open_bytes(&tiny(4, page(2, FREELIST, 0, &[]))).unwrap();
        let stats = db.walk(&mut |_, _| Ok(())).unwrap();
        assert_eq!(stats.free_pages, 0);
        assert_eq!(db.last_key(b"key").unwrap(), None);
    }

    #[test]
    fn crafted_metas_and_freelists_are_errors_not_panics() {
        // A high-water mark of 0: the reachability bitmap used to be indexed out of bounds.
        let e = open_bytes(&tiny(0, page(2, FREELIST, 0, &[]))).err().unwrap();
        assert!(e.to_string().contains("implausible high water mark"), "{e}");
        // A freelist whose u64 count (after the 0xFFFF marker) is 2^61: count * 8 overflowed.
        let mut body = Vec::new();
        body.extend_from_slice(&(1u64 << 61).to_le_bytes());
        let db = open_bytes(&tiny(4, page(2, FREELIST, 0xFFFF, &body))).unwrap();
        let e = db.walk(&mut |_, _| Ok(())).unwrap_err();
        assert!(e.0.contains("run past the page"), "{e}");
        // The root pointing at a meta page, and past the end.
        let mut f = tiny(4, page(2, FREELIST, 0, &[]));
        f[16..80].copy_from_slice(&meta_bytes(0, 2, 4, 1));
        f[PS + 16..PS + 80].copy_from_slice(&meta_bytes(0, 2, 4, 0));
        assert!(open_bytes(&f).is_err());
        let mut f = tiny(4, page(2, FREELIST, 0, &[]));
        f[16..80].copy_from_slice(&meta_bytes(9, 2, 4, 1));
        f[PS + 16..PS + 80].copy_from_slice(&meta_bytes(9, 2, 4, 0));
        assert!(open_bytes(&f).is_err());
    }

    #[test]
    fn a_file_cut_while_it_is_read_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.db");
        std::fs::write(&p, tiny(4, page(2, FREELIST, 0, &[]))).unwrap();
        let db = Db::open(&p).unwrap();
        // Cut under the open reader (a mapped file would kill the process with SIGBUS).
        std::fs::OpenOptions::new().write(true).open(&p).unwrap().set_len(PS as u64 * 3).unwrap();
        let e = db.walk(&mut |_, _| Ok(())).unwrap_err();
        assert!(e.0.contains("past the end of the file"), "{e}");
    }

    #[test]
    fn keys_outside_their_ancestors_range_are_caught() {
        // Root (page 3) is a branch with keys "b" → page 4 and "d" → page 5; page 5 holds "c",
        // which is below its ancestor's key "d".
        let branch = |entries: &[(&[u8], u64)]| {
            let mut body = vec![0u8; entries.len() * ELEMENT];
            let mut keys = Vec::new();
            for (i, (k, child)) in entries.iter().enumerate() {
                let pos = entries.len() * ELEMENT - i * ELEMENT + keys.len();
                body[i * ELEMENT..i * ELEMENT + 4].copy_from_slice(&(pos as u32).to_le_bytes());
                body[i * ELEMENT + 4..i * ELEMENT + 8].copy_from_slice(&(k.len() as u32).to_le_bytes());
                body[i * ELEMENT + 8..i * ELEMENT + 16].copy_from_slice(&child.to_le_bytes());
                keys.extend_from_slice(k);
            }
            body.extend(keys);
            body
        };
        let leaf = |k: &[u8]| {
            let mut body = vec![0u8; ELEMENT];
            body[4..8].copy_from_slice(&(ELEMENT as u32).to_le_bytes());
            body[8..12].copy_from_slice(&(k.len() as u32).to_le_bytes());
            body.extend_from_slice(k);
            body
        };
        let build = |second: &[u8]| {
            let mut f = page(0, META, 0, &meta_bytes(3, 2, 6, 1));
            f.extend(page(1, META, 0, &meta_bytes(3, 2, 6, 0)));
            f.extend(page(2, FREELIST, 0, &[]));
            f.extend(page(3, BRANCH, 2, &branch(&[(b"b", 4), (b"d", 5)])));
            f.extend(page(4, LEAF, 1, &leaf(b"b")));
            f.extend(page(5, LEAF, 1, &leaf(second)));
            f
        };
        // A root holding plain keys is reported first in a real walk; the key-range check is
        // what this test is about, so read the tree as a bucket's.
        let check = |bytes: &[u8]| {
            let db = open_bytes(bytes).unwrap();
            let mut reached = vec![0u64; 1];
            db.walk_tree(Source::Page(3), 0, &mut reached, &mut |_| Ok(()))
        };
        assert!(check(&build(b"e")).is_ok());
        let e = check(&build(b"c")).unwrap_err();
        assert!(e.0.contains("below its ancestor's key"), "{e}");
    }
}
