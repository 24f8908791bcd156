//! Checkpoint notes: the log's size and global head in the C2SP checkpoint text format, signed
//! with Ed25519 as a C2SP signed note. Pure: text in, text out; the signature scheme is
//! ed25519-dalek's, nothing of our own.
//!
//! ```text
//! meshflow-log/<first 16 hex digits of record 0's chain hash>
//! <size: number of records, decimal>
//! <global chain hash of record size − 1, standard base64>
//!
//! — <key name> <base64(key id[4] ‖ Ed25519 signature[64])>
//! ```
//!
//! The signature covers the note text: the three lines, each ending in a newline. Keys use the
//! signed-note key encodings: a verifier key is `<name>+<key id, 8 hex>+<base64(0x01 ‖ public
//! key)>`, a signer key `PRIVATE+KEY+<name>+<key id>+<base64(0x01 ‖ seed)>`, and the key id is
//! the first 4 bytes of SHA-256(`name` ‖ `\n` ‖ 0x01 ‖ public key).

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use ed25519_dalek::{Signer, SigningKey, Verifier, VerifyingKey};
use sha2::{Digest, Sha256};

/// Algorithm byte of Ed25519 in signed-note keys.
const ALG_ED25519: u8 = 0x01;

/// The body of a checkpoint note.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// Which log: `meshflow-log/<16 hex digits of record 0's hash>`.
    pub origin: String,
    /// Records in the log.
    pub size: u64,
    /// Global chain hash of record `size − 1`.
    pub head: [u8; 32],
}

/// A signed note that verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The checkpoint.
    pub checkpoint: Checkpoint,
    /// Name of the key that signed it.
    pub key_name: String,
}

/// The origin line of a log whose record 0 has chain hash `first`.
pub fn origin_for(first: &[u8; 32]) -> String {
    let mut hex = String::with_capacity(16);
    for b in first.iter().take(8) {
        hex.push_str(&format!("{b:02x}"));
    }
    format!("meshflow-log/{hex}")
}

fn key_id(name: &str, public: &[u8; 32]) -> [u8; 4] {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update(b"\n");
    h.update([ALG_ED25519]);
    h.update(public);
    let d: [u8; 32] = h.finalize().into();
    let mut id = [0u8; 4];
    id.copy_from_slice(d.get(..4).unwrap_or(&[0; 4]));
    id
}

fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty()
        || name
            .chars()
            .any(|c| c.is_whitespace() || c == '+' || c.is_control())
    {
        return Err("a key name is non-empty, without spaces or '+'".to_string());
    }
    Ok(())
}

/// A new signer key and its verifier key, from a 32-byte seed the caller drew from a CSPRNG.
pub fn key_pair(name: &str, seed: &[u8; 32]) -> Result<(String, String), String> {
    check_name(name)?;
    let signing = SigningKey::from_bytes(seed);
    let public = signing.verifying_key().to_bytes();
    let id = hex8(&key_id(name, &public));
    let mut sk = vec![ALG_ED25519];
    sk.extend_from_slice(seed);
    let mut vk = vec![ALG_ED25519];
    vk.extend_from_slice(&public);
    Ok((
        format!("PRIVATE+KEY+{name}+{id}+{}", STANDARD.encode(sk)),
        format!("{name}+{id}+{}", STANDARD.encode(vk)),
    ))
}

fn hex8(id: &[u8; 4]) -> String {
    id.iter().map(|b| format!("{b:02x}")).collect()
}

fn split_key(text: &str) -> Result<(String, [u8; 4], [u8; 32]), String> {
    let mut parts = text.trim().splitn(3, '+');
    let (Some(name), Some(id), Some(key)) = (parts.next(), parts.next(), parts.next()) else {
        return Err("a key is <name>+<id>+<base64>".to_string());
    };
    check_name(name)?;
    let id_bytes: Vec<u8> = (0..4)
        .map(|i| {
            id.get(2 * i..2 * i + 2)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        })
        .collect::<Option<_>>()
        .filter(|_| id.len() == 8)
        .ok_or("the key id is not 8 hex digits")?;
    let raw = STANDARD.decode(key).map_err(|_| "the key is not base64")?;
    let (alg, bytes) = raw.split_first().ok_or("empty key")?;
    if *alg != ALG_ED25519 {
        return Err("not an Ed25519 key".to_string());
    }
    let bytes: [u8; 32] = bytes.try_into().map_err(|_| "an Ed25519 key is 32 bytes")?;
    let id: [u8; 4] = id_bytes.try_into().map_err(|_| "key id")?;
    Ok((name.to_string(), id, bytes))
}

/// A parsed signer key.
pub struct SignerKey {
    name: String,
    id: [u8; 4],
    key: SigningKey,
}

impl std::fmt::Debug for SignerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignerKey")
            .field("name", &self.name)
            .finish()
    }
}

/// Parses a signer key (`PRIVATE+KEY+…`), checking its id.
pub fn parse_signer(text: &str) -> Result<SignerKey, String> {
    let rest = text
        .trim()
        .strip_prefix("PRIVATE+KEY+")
        .ok_or("not a signer key (PRIVATE+KEY+…)")?;
    let (name, id, seed) = split_key(rest)?;
    let key = SigningKey::from_bytes(&seed);
    if key_id(&name, &key.verifying_key().to_bytes()) != id {
        return Err("the signer key's id does not match its key".to_string());
    }
    Ok(SignerKey { name, id, key })
}

/// A parsed verifier key.
#[derive(Debug, Clone)]
pub struct VerifierKey {
    name: String,
    id: [u8; 4],
    key: VerifyingKey,
}

/// Parses a verifier key (`<name>+<id>+<base64>`), checking its id.
pub fn parse_verifier(text: &str) -> Result<VerifierKey, String> {
    let (name, id, public) = split_key(text)?;
    if key_id(&name, &public) != id {
        return Err("the verifier key's id does not match its key".to_string());
    }
    let key = VerifyingKey::from_bytes(&public).map_err(|_| "not a valid Ed25519 public key")?;
    Ok(VerifierKey { name, id, key })
}

/// The note text (before signatures).
pub fn note_text(c: &Checkpoint) -> String {
    format!("{}\n{}\n{}\n", c.origin, c.size, STANDARD.encode(c.head))
}

/// The note, signed by `key` when given (unsigned notes end after the text and a blank line).
pub fn write_note(c: &Checkpoint, key: Option<&SignerKey>) -> String {
    let text = note_text(c);
    match key {
        None => format!("{text}\n"),
        Some(k) => {
            let signature = k.key.sign(text.as_bytes()).to_bytes();
            let mut blob = k.id.to_vec();
            blob.extend_from_slice(&signature);
            format!("{text}\n\u{2014} {} {}\n", k.name, STANDARD.encode(blob))
        }
    }
}

/// Parses the text part of a note.
pub fn parse_text(text: &str) -> Result<Checkpoint, String> {
    let mut lines = text.split('\n');
    let lower_hex = |h: &str| {
        h.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    let origin = lines
        .next()
        .filter(|l| {
            l.strip_prefix("meshflow-log/")
                .is_some_and(|hex| hex.len() == 16 && lower_hex(hex))
        })
        .ok_or("the origin line is not meshflow-log/<16 lower-case hex digits>")?;
    let size = lines
        .next()
        .filter(|l| l.bytes().all(|b| b.is_ascii_digit()) && !l.starts_with('0'))
        .and_then(|l| l.parse::<u64>().ok())
        .ok_or("the second line is not a size (decimal, at least 1, no leading zero)")?;
    let head = lines
        .next()
        .and_then(|l| STANDARD.decode(l).ok())
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .ok_or("the third line is not a base64 SHA-256 hash")?;
    if lines.next().is_some_and(|l| !l.is_empty()) {
        return Err("a note has no extension lines".to_string());
    }
    Ok(Checkpoint {
        origin: origin.to_string(),
        size,
        head,
    })
}

/// Verifies a signed note with `key`: some signature line must be by that key and valid.
pub fn verify_note(note: &str, key: &VerifierKey) -> Result<Verified, String> {
    let (text, signatures) = note
        .split_once("\n\n")
        .ok_or("not a signed note (no blank line before the signatures)")?;
    let text = format!("{text}\n");
    let checkpoint = parse_text(&text)?;
    for line in signatures.lines() {
        let Some(rest) = line.strip_prefix("\u{2014} ") else {
            continue;
        };
        let Some((name, blob)) = rest.split_once(' ') else {
            continue;
        };
        if name != key.name {
            continue;
        }
        let Ok(blob) = STANDARD.decode(blob) else {
            continue;
        };
        let Some((id, sig)) = blob.split_first_chunk::<4>() else {
            continue;
        };
        if *id != key.id {
            continue;
        }
        let Ok(sig) = ed25519_dalek::Signature::from_slice(sig) else {
            continue;
        };
        return key
            .key
            .verify(text.as_bytes(), &sig)
            .map(|()| Verified {
                checkpoint: checkpoint.clone(),
                key_name: name.to_string(),
            })
            .map_err(|_| format!("the signature by '{name}' does not verify"));
    }
    Err(format!("the note has no signature by key '{}'", key.name))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Checkpoint {
        Checkpoint {
            origin: origin_for(&[0xab; 32]),
            size: 42,
            head: [7; 32],
        }
    }

    #[test]
    fn signed_notes_verify_and_any_change_fails() {
        let (sk, vk) = key_pair("auditor", &[5; 32]).unwrap();
        let signer = parse_signer(&sk).unwrap();
        let verifier = parse_verifier(&vk).unwrap();
        let note = write_note(&sample(), Some(&signer));
        assert!(note.starts_with("meshflow-log/abababababababab\n42\n"));
        let ok = verify_note(&note, &verifier).unwrap();
        assert_eq!(ok.checkpoint, sample());
        assert_eq!(ok.key_name, "auditor");
        assert!(verify_note(&note.replace("\n42\n", "\n41\n"), &verifier).is_err());
        let (_, other) = key_pair("auditor", &[6; 32]).unwrap();
        assert!(verify_note(&note, &parse_verifier(&other).unwrap()).is_err());
        assert!(verify_note(&write_note(&sample(), None), &verifier).is_err());
    }

    #[test]
    fn keys_round_trip_and_bad_keys_are_refused() {
        let (sk, vk) = key_pair("k", &[1; 32]).unwrap();
        assert!(sk.starts_with("PRIVATE+KEY+k+"));
        assert!(parse_verifier(&sk).is_err());
        assert!(parse_signer(&vk).is_err());
        let tampered = vk.replacen("k+", "j+", 1);
        assert!(parse_verifier(&tampered).is_err(), "id no longer matches");
        assert!(key_pair("a b", &[1; 32]).is_err());
    }
}
