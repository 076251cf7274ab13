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
        self.decimal(value.len() as u64);
        self.out.push(b':');
        self.out.extend_from_slice(value);
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
}
