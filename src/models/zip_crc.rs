//! CRC-32 verification of zip archives, the container of PyTorch's checkpoints since 1.6.
//!
//! Neither burn-store's reader nor `torch.load` checks the CRC-32 that the zip format keeps for
//! every entry, so flipped bytes inside a tensor load silently as wrong weights. This module
//! reads the central directory (with its zip64 extensions, which PyTorch writes for large
//! files), bounds every offset and size by the file's length before reading, and recomputes
//! each entry's checksum: stored entries as they are, deflated ones after inflating.

use std::io::{Read, Seek, SeekFrom};

use flate2::Crc;
use flate2::read::DeflateDecoder;

/// What can be wrong with a zip file.
#[derive(Debug)]
pub(crate) enum ZipFault {
    /// The structure is unreadable: a truncated file, offsets outside it, a bad signature.
    Malformed(String),
    /// An entry's bytes do not match the CRC-32 its directory records.
    Checksum {
        entry: String,
        expected: u32,
        actual: u32,
    },
}

impl From<std::io::Error> for ZipFault {
    fn from(e: std::io::Error) -> Self {
        ZipFault::Malformed(e.to_string())
    }
}

const LOCAL_HEADER: u32 = 0x0403_4b50;
const CENTRAL_HEADER: u32 = 0x0201_4b50;
const END_OF_DIRECTORY: u32 = 0x0605_4b50;
const ZIP64_END_OF_DIRECTORY: u32 = 0x0606_4b50;
const ZIP64_LOCATOR: u32 = 0x0706_4b50;
/// The fixed part of a central directory entry: the most entries a directory of a given size
/// can hold is its size over this, which bounds the loop whatever the count field says.
const CENTRAL_FIXED: usize = 46;

/// Whether the file starts as a zip archive does.
pub(crate) fn is_zip(file: &mut (impl Read + Seek)) -> std::io::Result<bool> {
    let mut magic = [0u8; 4];
    file.seek(SeekFrom::Start(0))?;
    let is_zip = file.read_exact(&mut magic).is_ok() && u32::from_le_bytes(magic) == LOCAL_HEADER;
    file.seek(SeekFrom::Start(0))?;
    Ok(is_zip)
}

/// What [`verify`] checked.
#[derive(Debug)]
pub(crate) struct Checked {
    /// The entries.
    #[cfg_attr(
        not(test),
        expect(dead_code, reason = "the tests count the entries checked")
    )]
    pub(crate) entries: usize,
    /// The bytes the deflated entries inflate to (at most [`MAX_INFLATED_BYTES`]).
    pub(crate) inflated: u64,
}

/// Checks the CRC-32 and the declared length of every entry of the zip archive `file`.
pub(crate) fn verify(file: &mut (impl Read + Seek)) -> Result<Checked, ZipFault> {
    let len = file.seek(SeekFrom::End(0))?;
    let (entries, directory_offset, directory_size) = end_of_directory(file, len)?;
    if directory_offset
        .checked_add(directory_size)
        .is_none_or(|end| end > len)
    {
        return Err(malformed("the central directory lies outside the file"));
    }
    if entries > directory_size / CENTRAL_FIXED as u64 {
        return Err(malformed(
            "more entries than the central directory can hold",
        ));
    }
    let mut directory = vec![0u8; directory_size as usize];
    file.seek(SeekFrom::Start(directory_offset))?;
    file.read_exact(&mut directory)?;
    let mut at = 0usize;
    let mut inflated = 0u64;
    for _ in 0..entries {
        let entry = CentralEntry::parse(&directory, &mut at)?;
        if entry.method != 0 {
            inflated = inflated.saturating_add(entry.uncompressed);
            if inflated > MAX_INFLATED_BYTES {
                return Err(malformed(&format!(
                    "its deflated entries declare more than {MAX_INFLATED_BYTES} bytes"
                )));
            }
        }
        entry.verify(file, directory_offset)?;
    }
    Ok(Checked {
        entries: entries as usize,
        inflated,
    })
}

fn malformed(reason: &str) -> ZipFault {
    ZipFault::Malformed(reason.to_string())
}

/// Reads `(entries, directory offset, directory size)` from the end-of-directory record, or
/// from its zip64 version when the classic fields overflow.
fn end_of_directory(file: &mut (impl Read + Seek), len: u64) -> Result<(u64, u64, u64), ZipFault> {
    // The record is 22 bytes plus a comment of at most 65,535.
    let tail_len = len.min(22 + 65_535);
    let mut tail = vec![0u8; tail_len as usize];
    file.seek(SeekFrom::Start(len - tail_len))?;
    file.read_exact(&mut tail)?;
    let at = (0..tail.len().saturating_sub(21))
        .rev()
        .find(|&i| u32_at(&tail, i) == Some(END_OF_DIRECTORY))
        .ok_or_else(|| malformed("no end-of-directory record: the file is truncated"))?;
    let record = &tail[at..];
    let entries = u64::from(u16_at(record, 10).unwrap_or(0));
    let size = u64::from(u32_at(record, 12).unwrap_or(0));
    let offset = u64::from(u32_at(record, 16).unwrap_or(0));
    if entries != 0xffff && size != 0xffff_ffff && offset != 0xffff_ffff {
        return Ok((entries, offset, size));
    }
    // Zip64: a 20-byte locator just before the record points at the zip64 record.
    let locator = at
        .checked_sub(20)
        .map(|i| &tail[i..at])
        .filter(|l| u32_at(l, 0) == Some(ZIP64_LOCATOR))
        .ok_or_else(|| malformed("zip64 locator missing"))?;
    let record_offset = u64_at(locator, 8).unwrap_or(u64::MAX);
    if record_offset.checked_add(56).is_none_or(|end| end > len) {
        return Err(malformed("zip64 record outside the file"));
    }
    let mut record = [0u8; 56];
    file.seek(SeekFrom::Start(record_offset))?;
    file.read_exact(&mut record)?;
    if u32_at(&record, 0) != Some(ZIP64_END_OF_DIRECTORY) {
        return Err(malformed("bad zip64 end-of-directory signature"));
    }
    let read = |i| u64_at(&record, i).unwrap_or(u64::MAX);
    Ok((read(32), read(48), read(40)))
}

/// The fields of a central directory entry that locate and check its data.
struct CentralEntry {
    name: String,
    method: u16,
    crc: u32,
    compressed: u64,
    uncompressed: u64,
    local_offset: u64,
}

/// The most bytes the deflated entries of one archive may declare. `torch.save` stores its
/// entries uncompressed, so any real checkpoint passes; the bound keeps a small deflated
/// file from being inflated (and then read by burn-store) to an arbitrary size.
pub(crate) const MAX_INFLATED_BYTES: u64 = 1 << 30;

impl CentralEntry {
    fn parse(directory: &[u8], at: &mut usize) -> Result<Self, ZipFault> {
        let d = directory
            .get(*at..)
            .filter(|d| d.len() >= CENTRAL_FIXED && u32_at(d, 0) == Some(CENTRAL_HEADER))
            .ok_or_else(|| malformed("bad central directory entry"))?;
        let field16 = |i| usize::from(u16_at(d, i).unwrap_or(0));
        let (name_len, extra_len, comment_len) = (field16(28), field16(30), field16(32));
        let end = CENTRAL_FIXED + name_len + extra_len + comment_len;
        if d.len() < end {
            return Err(malformed("central directory entry runs past the directory"));
        }
        let name =
            String::from_utf8_lossy(&d[CENTRAL_FIXED..CENTRAL_FIXED + name_len]).into_owned();
        let mut compressed = u64::from(u32_at(d, 20).unwrap_or(0));
        let mut uncompressed = u64::from(u32_at(d, 24).unwrap_or(0));
        let mut local_offset = u64::from(u32_at(d, 42).unwrap_or(0));
        // Zip64 extra field: the overflowing fields, in this order, 8 bytes each.
        let extra = &d[CENTRAL_FIXED + name_len..CENTRAL_FIXED + name_len + extra_len];
        let mut e = 0;
        while e + 4 <= extra.len() {
            let id = u16_at(extra, e).unwrap_or(0);
            let size = usize::from(u16_at(extra, e + 2).unwrap_or(0));
            let body = extra.get(e + 4..e + 4 + size).unwrap_or(&[]);
            if id == 1 {
                let mut fields = body
                    .chunks_exact(8)
                    .map(|c| u64_at(c, 0).unwrap_or(u64::MAX));
                if uncompressed == 0xffff_ffff {
                    uncompressed = fields.next().unwrap_or(u64::MAX);
                }
                if compressed == 0xffff_ffff {
                    compressed = fields.next().unwrap_or(u64::MAX);
                }
                if local_offset == 0xffff_ffff {
                    local_offset = fields.next().unwrap_or(u64::MAX);
                }
            }
            e += 4 + size;
        }
        *at += end;
        Ok(Self {
            name,
            method: u16_at(d, 10).unwrap_or(0),
            crc: u32_at(d, 16).unwrap_or(0),
            compressed,
            uncompressed,
            local_offset,
        })
    }

    /// Recomputes the checksum of the entry's data, which must end before `data_end` (the
    /// central directory).
    fn verify(&self, file: &mut (impl Read + Seek), data_end: u64) -> Result<(), ZipFault> {
        let mut header = [0u8; 30];
        if self
            .local_offset
            .checked_add(30)
            .is_none_or(|end| end > data_end)
        {
            return Err(self.outside());
        }
        file.seek(SeekFrom::Start(self.local_offset))?;
        file.read_exact(&mut header)?;
        if u32_at(&header, 0) != Some(LOCAL_HEADER) {
            return Err(ZipFault::Malformed(format!(
                "entry {}: bad local header signature",
                self.name
            )));
        }
        let skip = 30
            + u64::from(u16_at(&header, 26).unwrap_or(0))
            + u64::from(u16_at(&header, 28).unwrap_or(0));
        let start = self.local_offset + skip;
        if start
            .checked_add(self.compressed)
            .is_none_or(|end| end > data_end)
        {
            return Err(self.outside());
        }
        file.seek(SeekFrom::Start(start))?;
        // Read in 64 KiB pieces by `crc_of`; the inflater buffers its own input.
        let data = file.take(self.compressed);
        let (actual, length) = match self.method {
            0 => crc_of(data)?,
            8 => {
                // Inflated at most one byte past what the directory declares, which readers
                // trust to size their buffers.
                crc_of(DeflateDecoder::new(data).take(self.uncompressed.saturating_add(1)))?
            }
            other => {
                return Err(ZipFault::Malformed(format!(
                    "entry {}: compression method {other} is not supported",
                    self.name
                )));
            }
        };
        if length != self.uncompressed {
            return Err(ZipFault::Malformed(format!(
                "entry {} holds {length}{} bytes, its directory declares {}",
                self.name,
                if length > self.uncompressed {
                    " or more"
                } else {
                    ""
                },
                self.uncompressed
            )));
        }
        if actual != self.crc {
            return Err(ZipFault::Checksum {
                entry: self.name.clone(),
                expected: self.crc,
                actual,
            });
        }
        Ok(())
    }

    fn outside(&self) -> ZipFault {
        ZipFault::Malformed(format!("entry {} lies outside the file", self.name))
    }
}

/// The CRC-32 of a stream and its length.
fn crc_of(mut reader: impl Read) -> std::io::Result<(u32, u64)> {
    let (mut crc, mut length) = (Crc::new(), 0u64);
    let mut buffer = vec![0u8; 1 << 16];
    loop {
        let read = reader.read(&mut buffer)?;
        if read == 0 {
            return Ok((crc.sum(), length));
        }
        crc.update(&buffer[..read]);
        length += read as u64;
    }
}

fn u16_at(bytes: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(bytes.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

fn u64_at(bytes: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(bytes.get(at..at + 8)?.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture() -> Vec<u8> {
        std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/models/cifar_resnet20.zip.pth.tar"
        ))
        .unwrap()
    }

    fn verify_bytes(bytes: &[u8]) -> Result<usize, ZipFault> {
        verify(&mut std::io::Cursor::new(bytes)).map(|c| c.entries)
    }

    /// A zip of one entry `name` holding `data` deflated, whose directory declares
    /// `declared` bytes inflated (and the CRC-32 of the data).
    fn deflated_zip(data: &[u8], declared: u32) -> Vec<u8> {
        use std::io::Write;
        let mut deflate =
            flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        deflate.write_all(data).unwrap();
        let body = deflate.finish().unwrap();
        let mut crc = Crc::new();
        crc.update(data);
        let name = b"m/data/0";
        let sizes = |out: &mut Vec<u8>| {
            out.extend(crc.sum().to_le_bytes());
            out.extend((body.len() as u32).to_le_bytes());
            out.extend(declared.to_le_bytes());
            out.extend((name.len() as u16).to_le_bytes());
            out.extend(0u16.to_le_bytes());
        };
        let mut zip = LOCAL_HEADER.to_le_bytes().to_vec();
        zip.extend([20, 0, 0, 0, 8, 0, 0, 0, 0, 0]);
        sizes(&mut zip);
        zip.extend(name);
        zip.extend(&body);
        let directory = zip.len() as u32;
        zip.extend(CENTRAL_HEADER.to_le_bytes());
        zip.extend([20, 0, 20, 0, 0, 0, 8, 0, 0, 0, 0, 0]);
        sizes(&mut zip);
        zip.extend([0u8; 12]);
        zip.extend(0u32.to_le_bytes());
        zip.extend(name);
        let directory_size = zip.len() as u32 - directory;
        zip.extend(END_OF_DIRECTORY.to_le_bytes());
        zip.extend([0, 0, 0, 0, 1, 0, 1, 0]);
        zip.extend(directory_size.to_le_bytes());
        zip.extend(directory.to_le_bytes());
        zip.extend([0, 0]);
        zip
    }

    #[test]
    fn a_deflated_entry_must_inflate_to_its_declared_length() {
        let data = vec![0u8; 1 << 20];
        assert_eq!(verify_bytes(&deflated_zip(&data, 1 << 20)).unwrap(), 1);
        // A bomb: 1 MiB of zeros (a few KB deflated) declared as 4 KiB is refused at 4 KiB
        // and a byte, not inflated to its end; declared short, it is refused too.
        for declared in [4096, (1 << 20) + 1] {
            match verify_bytes(&deflated_zip(&data, declared)) {
                Err(ZipFault::Malformed(reason)) => {
                    assert!(
                        reason.contains(&format!("its directory declares {declared}")),
                        "{reason}"
                    )
                }
                other => panic!("{other:?}"),
            }
        }
        // More than the cap declared: refused before inflating anything.
        match verify_bytes(&deflated_zip(&data, u32::MAX - 1)) {
            Err(ZipFault::Malformed(reason)) => {
                assert!(reason.contains("declare more than"), "{reason}")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_stored_entry_whose_directory_lies_about_its_length_is_refused() {
        let mut bytes = fixture();
        // The first central directory entry's uncompressed size, raised by one.
        let directory = (0..bytes.len() - 4)
            .rev()
            .find(|&i| u32_at(&bytes, i) == Some(CENTRAL_HEADER))
            .unwrap();
        let field = directory + 24;
        let size = u32_at(&bytes, field).unwrap();
        bytes[field..field + 4].copy_from_slice(&(size + 1).to_le_bytes());
        match verify_bytes(&bytes) {
            Err(ZipFault::Malformed(reason)) => {
                assert!(
                    reason.contains(&format!("declares {}", size + 1)),
                    "{reason}"
                )
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_intact_checkpoint_passes_every_entry() {
        let checked = verify_bytes(&fixture()).unwrap();
        // ResNet-20's tensors plus the pickle, version and byte-order entries.
        assert!(checked > 60, "{checked}");
    }

    #[test]
    fn a_flipped_byte_in_a_tensor_is_named() {
        let mut bytes = fixture();
        // Middle of the file: tensor data (the directory and pickle are at the ends).
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0x5a;
        match verify_bytes(&bytes) {
            Err(ZipFault::Checksum {
                entry,
                expected,
                actual,
            }) => {
                assert!(entry.contains("/data/"), "{entry}");
                assert_ne!(expected, actual);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn truncations_are_malformed_never_a_panic() {
        let bytes = fixture();
        for cut in [
            0,
            4,
            30,
            1_000,
            bytes.len() / 2,
            bytes.len() - 30,
            bytes.len() - 1,
        ] {
            assert!(
                matches!(verify_bytes(&bytes[..cut]), Err(ZipFault::Malformed(_))),
                "cut at {cut}"
            );
        }
    }
}
