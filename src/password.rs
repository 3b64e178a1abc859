//! The one password generator, for the credentials the operator keeps in a
//! Secret and the local runtime's throwaway users.

/// A password of `len` letters and digits, starting with a letter, from the OS RNG.
pub fn random(len: usize) -> std::io::Result<String> {
    use std::io::Read;
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut out = String::with_capacity(len);
    let mut f = std::fs::File::open("/dev/urandom")?;
    let mut byte = [0u8; 1];
    while out.len() < len {
        f.read_exact(&mut byte)?;
        // Rejection sampling: 248 = 4 * 62, so every symbol is equally likely.
        if byte[0] >= 248 {
            continue;
        }
        let c = ALPHABET[byte[0] as usize % ALPHABET.len()];
        if out.is_empty() && !c.is_ascii_alphabetic() {
            continue;
        }
        out.push(c as char);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn letters_and_digits_starting_with_a_letter() {
        let a = super::random(24).unwrap();
        let b = super::random(24).unwrap();
        assert_eq!(a.len(), 24);
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric()), "{a}");
        assert!(a.starts_with(|c: char| c.is_ascii_alphabetic()), "{a}");
        assert_ne!(a, b);
    }
}
