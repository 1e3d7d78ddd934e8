//! Reading input that may be compressed: gzip and zstd are recognised by their first bytes
//! (`1f 8b`, `28 b5 2f fd`), whatever the file is called, and decoded on the fly.
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;

/// How a stream of bytes is compressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    /// Not compressed.
    None,
    /// gzip (`.gz`), possibly several members one after another.
    Gzip,
    /// zstd (`.zst`, `.zstd`).
    Zstd,
}

impl Compression {
    /// The compression whose magic number `head` starts with.
    pub fn of_content(head: &[u8]) -> Self {
        if head.starts_with(&[0x1f, 0x8b]) {
            Compression::Gzip
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Compression::Zstd
        } else {
            Compression::None
        }
    }

    /// The compression a file name claims (`a.jsonl.gz`, `b.txt.zst`), and the name without it.
    pub fn of_name(name: &str) -> (&str, Self) {
        let lower = name.to_ascii_lowercase();
        for (suffix, compression) in [(".gz", Self::Gzip), (".zst", Self::Zstd), (".zstd", Self::Zstd)] {
            if lower.ends_with(suffix) {
                return (&name[..name.len() - suffix.len()], compression);
            }
        }
        (name, Self::None)
    }
}

const BUFFER: usize = 1 << 16;

/// `inner` decoded: its compression, read from its first bytes, and a buffered reader of the
/// decompressed bytes.
pub fn decoded_reader<R: Read + Send + 'static>(
    inner: R,
) -> io::Result<(Compression, Box<dyn BufRead + Send>)> {
    let mut reader = BufReader::with_capacity(BUFFER, inner);
    let compression = Compression::of_content(reader.fill_buf()?);
    let decoded: Box<dyn BufRead + Send> = match compression {
        Compression::None => Box::new(reader),
        Compression::Gzip => Box::new(BufReader::with_capacity(
            BUFFER,
            flate2::bufread::MultiGzDecoder::new(reader),
        )),
        Compression::Zstd => Box::new(BufReader::with_capacity(
            BUFFER,
            zstd::stream::read::Decoder::with_buffer(reader)?,
        )),
    };
    Ok((compression, decoded))
}

/// Opens `path` and decodes it as [`decoded_reader`] does.
pub fn open_decoded(path: &Path) -> io::Result<Box<dyn BufRead + Send>> {
    decoded_reader(File::open(path)?).map(|(_, reader)| reader)
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn read_all(bytes: Vec<u8>) -> (Compression, String) {
        let (compression, mut reader) = decoded_reader(io::Cursor::new(bytes)).unwrap();
        let mut text = String::new();
        reader.read_to_string(&mut text).unwrap();
        (compression, text)
    }

    #[test]
    fn plain_gzip_and_zstd_are_told_apart_by_content() {
        let text = "سطر أول\nsecond line\n";
        assert_eq!(
            read_all(text.as_bytes().to_vec()),
            (Compression::None, text.into())
        );
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(text.as_bytes()).unwrap();
        let mut two_members = gz.finish().unwrap();
        two_members.extend(two_members.clone());
        assert_eq!(read_all(two_members), (Compression::Gzip, text.repeat(2)));
        let zst = zstd::stream::encode_all(text.as_bytes(), 1).unwrap();
        assert_eq!(read_all(zst), (Compression::Zstd, text.into()));
        assert_eq!(read_all(Vec::new()), (Compression::None, String::new()));
    }

    #[test]
    fn names_claim_a_compression() {
        assert_eq!(Compression::of_name("a.jsonl.GZ"), ("a.jsonl", Compression::Gzip));
        assert_eq!(Compression::of_name("b.txt.zstd"), ("b.txt", Compression::Zstd));
        assert_eq!(Compression::of_name("c.txt"), ("c.txt", Compression::None));
    }
}
