//! The encoder: appends bencode to a caller's buffer, so a reply is built in
//! one reused allocation.

/// Writes bencode into a `Vec<u8>`. The caller writes dictionary keys in
/// sorted order (BEP 3); the KRPC encoder does.
#[derive(Debug)]
pub struct Encoder<'b> {
    out: &'b mut Vec<u8>,
}

impl<'b> Encoder<'b> {
    /// An encoder appending to `out`.
    pub fn new(out: &'b mut Vec<u8>) -> Self {
        Encoder { out }
    }

    fn decimal(&mut self, value: u64) {
        // Most values are short string lengths: skip the loop for them.
        if value < 10 {
            self.out.push(b'0' + value as u8);
            return;
        }
        if value < 100 {
            self.out
                .extend_from_slice(&[b'0' + (value / 10) as u8, b'0' + (value % 10) as u8]);
            return;
        }
        let mut digits = [0u8; 20];
        let mut i = digits.len();
        let mut v = value;
        loop {
            i -= 1;
            digits[i] = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        self.out.extend_from_slice(&digits[i..]);
    }

    /// `i…e`
    pub fn int(&mut self, value: i64) -> &mut Self {
        self.out.push(b'i');
        if value < 0 {
            self.out.push(b'-');
        }
        self.decimal(value.unsigned_abs());
        self.out.push(b'e');
        self
    }

    /// `N:…`
    pub fn bytes(&mut self, value: &[u8]) -> &mut Self {
        self.bytes_header(value.len());
        self.out.extend_from_slice(value);
        self
    }

    /// `N:`, the head of a string whose `len` bytes the caller appends next
    /// with [`Encoder::raw`] (a string built in pieces, without a buffer).
    pub fn bytes_header(&mut self, len: usize) -> &mut Self {
        self.decimal(len as u64);
        self.out.push(b':');
        self
    }

    /// Already-encoded bencode, copied as it is.
    pub fn raw(&mut self, encoded: &[u8]) -> &mut Self {
        self.out.extend_from_slice(encoded);
        self
    }

    /// `d`
    pub fn begin_dict(&mut self) -> &mut Self {
        self.out.push(b'd');
        self
    }

    /// `l`
    pub fn begin_list(&mut self) -> &mut Self {
        self.out.push(b'l');
        self
    }

    /// `e`, closing the innermost list or dictionary.
    pub fn end(&mut self) -> &mut Self {
        self.out.push(b'e');
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_scalars_and_containers() {
        let mut out = Vec::new();
        Encoder::new(&mut out)
            .begin_dict()
            .bytes(b"a")
            .int(-42)
            .bytes(b"b")
            .begin_list()
            .int(0)
            .int(i64::MIN)
            .bytes(b"")
            .end()
            .end();
        assert_eq!(out, b"d1:ai-42e1:bli0ei-9223372036854775808e0:ee".to_vec());
    }

    #[test]
    fn decimals_of_every_width() {
        for v in [0i64, 9, 10, 99, 100, 101, 999, 1000, 65535, i64::MAX] {
            let mut out = Vec::new();
            Encoder::new(&mut out).int(v);
            assert_eq!(out, format!("i{v}e").into_bytes());
        }
        let mut out = Vec::new();
        Encoder::new(&mut out).bytes_header(123).raw(&[b'x'; 123]);
        assert_eq!(&out[..4], b"123:");
        assert_eq!(out.len(), 127);
    }
}
