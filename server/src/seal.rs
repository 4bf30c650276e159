//! Encryption at rest for stored blobs: envelope encryption with AES-256-GCM.
//!
//! Each object gets its own random data key; the data key is wrapped with
//! the configured key-encryption key (KEK) and stored in the object's
//! header, bound to the object's storage key so objects cannot be swapped.
//! The body is encrypted in 64 KiB chunks (the STREAM construction: a nonce
//! prefix per object, a chunk counter and a last-chunk flag per nonce), so
//! truncation, reordering and bit flips are all detected, and a large file
//! is encrypted while it streams to the store.
//!
//! Rotation: a new KEK is configured as current and the old ones are kept
//! as previous keys; `medvision blobs rewrap` re-wraps every object's data
//! key with the current KEK (the header changes, the body does not need to
//! be decrypted) and encrypts objects stored before encryption was on.
//!
//! Layout: `MVBLOBE1` | KEK id (8) | wrap nonce (12) | wrapped data key (48)
//! | nonce prefix (7) | chunks (plaintext ≤ 64 KiB + 16-byte tag each).

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use rand::RngCore;
use sha2::{Digest, Sha256};

pub const MAGIC: &[u8; 8] = b"MVBLOBE1";
pub const CHUNK: usize = 64 * 1024;
const TAG: usize = 16;
const PREFIX: usize = 7;
pub const HEADER: usize = 8 + 8 + 12 + 32 + TAG + PREFIX;

#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("the encryption key must be 64 hex digits")]
    BadKey,
    #[error("the object is encrypted with a key that is not configured (key id {0})")]
    UnknownKey(String),
    #[error("the object is encrypted but no encryption key is configured")]
    NoKey,
    #[error("the encrypted object is damaged or was tampered with")]
    Corrupt,
}

/// One key-encryption key.
#[derive(Clone)]
struct Kek {
    id: [u8; 8],
    cipher: Aes256Gcm,
}

impl Kek {
    fn parse(hex_key: &str) -> Result<Self, SealError> {
        let bytes: [u8; 32] = hex::decode(hex_key.trim())
            .ok()
            .and_then(|v| v.try_into().ok())
            .ok_or(SealError::BadKey)?;
        let mut h = Sha256::new();
        h.update(b"medvision-kek-id");
        h.update(bytes);
        let mut id = [0u8; 8];
        id.copy_from_slice(&h.finalize()[..8]);
        Ok(Self {
            id,
            cipher: Aes256Gcm::new(&bytes.into()),
        })
    }
}

/// The configured keys: the current one seals, all of them open.
#[derive(Clone)]
pub struct Keys {
    current: Kek,
    previous: Vec<Kek>,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keys")
            .field("current", &hex::encode(self.current.id))
            .field("previous", &self.previous.len())
            .finish()
    }
}

impl Keys {
    /// `current`: 64 hex digits. `previous`: comma-separated, for objects
    /// not yet re-wrapped after a rotation.
    pub fn parse(current: &str, previous: Option<&str>) -> Result<Self, SealError> {
        let previous = previous
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(Kek::parse)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            current: Kek::parse(current)?,
            previous,
        })
    }

    /// The current key's id, as stored in headers (hex).
    pub fn current_id(&self) -> String {
        hex::encode(self.current.id)
    }

    fn find(&self, id: &[u8]) -> Option<&Kek> {
        std::iter::once(&self.current)
            .chain(self.previous.iter())
            .find(|k| k.id == id)
    }
}

/// Whether stored bytes are a sealed object.
pub fn is_sealed(bytes: &[u8]) -> bool {
    bytes.len() >= HEADER && &bytes[..8] == MAGIC
}

fn wrap_aad(kek_id: &[u8], object: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(16 + object.len());
    aad.extend_from_slice(MAGIC);
    aad.extend_from_slice(kek_id);
    aad.extend_from_slice(object.as_bytes());
    aad
}

fn chunk_nonce(prefix: &[u8], counter: u32, last: bool) -> [u8; 12] {
    let mut n = [0u8; 12];
    n[..PREFIX].copy_from_slice(prefix);
    n[PREFIX..11].copy_from_slice(&counter.to_be_bytes());
    n[11] = u8::from(last);
    n
}

/// Encrypts one object as it streams: `header()` first, then `chunk()`
/// for each full 64 KiB piece and `last()` for the final (possibly short
/// or empty) one.
pub struct Sealer {
    data: Aes256Gcm,
    prefix: [u8; PREFIX],
    counter: u32,
    header: Vec<u8>,
}

impl Sealer {
    pub fn new(keys: &Keys, object: &str) -> Result<Self, SealError> {
        let mut rng = rand::rngs::OsRng;
        let mut dek = [0u8; 32];
        rng.fill_bytes(&mut dek);
        let mut prefix = [0u8; PREFIX];
        rng.fill_bytes(&mut prefix);
        let header = header(keys, object, &dek, &prefix)?;
        Ok(Self {
            data: Aes256Gcm::new(&dek.into()),
            prefix,
            counter: 0,
            header,
        })
    }

    pub fn header(&self) -> &[u8] {
        &self.header
    }

    fn seal(&mut self, plain: &[u8], last: bool) -> Result<Vec<u8>, SealError> {
        let nonce = chunk_nonce(&self.prefix, self.counter, last);
        self.counter = self.counter.checked_add(1).ok_or(SealError::Corrupt)?;
        self.data
            .encrypt(Nonce::from_slice(&nonce), plain)
            .map_err(|_| SealError::Corrupt)
    }

    /// A full chunk that is not the last.
    pub fn chunk(&mut self, plain: &[u8]) -> Result<Vec<u8>, SealError> {
        debug_assert_eq!(plain.len(), CHUNK);
        self.seal(plain, false)
    }

    pub fn last(mut self, plain: &[u8]) -> Result<Vec<u8>, SealError> {
        self.seal(plain, true)
    }
}

/// Seals bytes already in memory.
pub fn seal(keys: &Keys, object: &str, plain: &[u8]) -> Result<Vec<u8>, SealError> {
    let mut s = Sealer::new(keys, object)?;
    let mut out = Vec::with_capacity(HEADER + plain.len() + (plain.len() / CHUNK + 1) * TAG);
    out.extend_from_slice(s.header());
    let mut pieces = plain.chunks(CHUNK).peekable();
    if pieces.peek().is_none() {
        out.extend(s.last(&[])?);
        return Ok(out);
    }
    while let Some(p) = pieces.next() {
        if pieces.peek().is_none() {
            if p.len() == CHUNK {
                // A full final chunk is sealed as a normal one, then an
                // empty last chunk marks the end.
                out.extend(s.chunk(p)?);
                out.extend(s.last(&[])?);
            } else {
                out.extend(s.last(p)?);
            }
            return Ok(out);
        }
        out.extend(s.chunk(p)?);
    }
    Ok(out)
}

/// An object's header: the data key wrapped by the current key (fresh
/// wrap nonce), then the body's nonce prefix.
fn header(keys: &Keys, object: &str, dek: &[u8; 32], prefix: &[u8]) -> Result<Vec<u8>, SealError> {
    let mut wnonce = [0u8; 12];
    rand::rngs::OsRng.fill_bytes(&mut wnonce);
    let wrapped = keys
        .current
        .cipher
        .encrypt(
            Nonce::from_slice(&wnonce),
            Payload {
                msg: dek,
                aad: &wrap_aad(&keys.current.id, object),
            },
        )
        .map_err(|_| SealError::Corrupt)?;
    let mut h = Vec::with_capacity(HEADER);
    h.extend_from_slice(MAGIC);
    h.extend_from_slice(&keys.current.id);
    h.extend_from_slice(&wnonce);
    h.extend_from_slice(&wrapped);
    h.extend_from_slice(prefix);
    Ok(h)
}

/// Unwraps an object's data key with whichever configured key wrapped it.
fn unwrap_dek(keys: &Keys, object: &str, sealed: &[u8]) -> Result<[u8; 32], SealError> {
    if !is_sealed(sealed) {
        return Err(SealError::Corrupt);
    }
    let id = &sealed[8..16];
    let kek = keys
        .find(id)
        .ok_or_else(|| SealError::UnknownKey(hex::encode(id)))?;
    let dek = kek
        .cipher
        .decrypt(
            Nonce::from_slice(&sealed[16..28]),
            Payload {
                msg: &sealed[28..28 + 32 + TAG],
                aad: &wrap_aad(id, object),
            },
        )
        .map_err(|_| SealError::Corrupt)?;
    dek.try_into().map_err(|_| SealError::Corrupt)
}

/// Decrypts a sealed object.
pub fn open(keys: &Keys, object: &str, sealed: &[u8]) -> Result<Vec<u8>, SealError> {
    let data = Aes256Gcm::new(&unwrap_dek(keys, object, sealed)?.into());
    let prefix = &sealed[HEADER - PREFIX..HEADER];
    let body = &sealed[HEADER..];
    let mut out = Vec::with_capacity(body.len());
    let mut at = 0usize;
    let mut counter = 0u32;
    loop {
        let rest = body.len() - at;
        if rest < TAG {
            return Err(SealError::Corrupt);
        }
        let last = rest <= CHUNK + TAG;
        let take = if last { rest } else { CHUNK + TAG };
        let nonce = chunk_nonce(prefix, counter, last);
        let plain = data
            .decrypt(Nonce::from_slice(&nonce), &body[at..at + take])
            .map_err(|_| SealError::Corrupt)?;
        out.extend_from_slice(&plain);
        at += take;
        if last {
            return Ok(out);
        }
        counter = counter.checked_add(1).ok_or(SealError::Corrupt)?;
    }
}

/// The same object with its data key wrapped by the current KEK: only the
/// header changes. `None` when it already is.
pub fn rewrap(keys: &Keys, object: &str, sealed: &[u8]) -> Result<Option<Vec<u8>>, SealError> {
    if is_sealed(sealed) && sealed[8..16] == keys.current.id {
        return Ok(None);
    }
    let dek = unwrap_dek(keys, object, sealed)?;
    let mut out = header(keys, object, &dek, &sealed[HEADER - PREFIX..HEADER])?;
    out.extend_from_slice(&sealed[HEADER..]);
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const K1: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
    const K2: &str = "f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff000102030405060708090a0b0c0d0e0f";

    fn bytes(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 31 % 251) as u8).collect()
    }

    #[test]
    fn round_trips_at_every_chunk_boundary() {
        let keys = Keys::parse(K1, None).unwrap();
        for n in [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK, 3 * CHUNK + 7] {
            let plain = bytes(n);
            let sealed = seal(&keys, "orgs/a/bb/key", &plain).unwrap();
            assert!(is_sealed(&sealed));
            if n > 0 {
                assert_ne!(&sealed[HEADER..HEADER + n.min(32)], &plain[..n.min(32)]);
            }
            assert_eq!(open(&keys, "orgs/a/bb/key", &sealed).unwrap(), plain, "{n}");
        }
    }

    #[test]
    fn same_plaintext_seals_differently() {
        let keys = Keys::parse(K1, None).unwrap();
        let a = seal(&keys, "k", b"same").unwrap();
        let b = seal(&keys, "k", b"same").unwrap();
        assert_ne!(a, b, "fresh data key and nonces per object");
    }

    #[test]
    fn tampering_truncation_swapping_and_wrong_keys_are_refused() {
        let keys = Keys::parse(K1, None).unwrap();
        let plain = bytes(2 * CHUNK + 100);
        let sealed = seal(&keys, "orgs/a/bb/one", &plain).unwrap();
        let mut flipped = sealed.clone();
        flipped[HEADER + CHUNK + 3] ^= 1;
        assert!(matches!(
            open(&keys, "orgs/a/bb/one", &flipped),
            Err(SealError::Corrupt)
        ));
        // Cut after a whole chunk: the last-chunk flag is missing.
        let cut = &sealed[..HEADER + CHUNK + TAG];
        assert!(open(&keys, "orgs/a/bb/one", cut).is_err());
        // Dropping the final chunk entirely.
        let cut = &sealed[..HEADER + 2 * (CHUNK + TAG)];
        assert!(open(&keys, "orgs/a/bb/one", cut).is_err());
        // Moved to another object's key.
        assert!(open(&keys, "orgs/a/bb/two", &sealed).is_err());
        let other = Keys::parse(K2, None).unwrap();
        assert!(matches!(
            open(&other, "orgs/a/bb/one", &sealed),
            Err(SealError::UnknownKey(_))
        ));
        assert!(matches!(Keys::parse("abc", None), Err(SealError::BadKey)));
    }

    #[test]
    fn rotation_rewraps_the_header_only() {
        let old = Keys::parse(K1, None).unwrap();
        let plain = bytes(CHUNK + 5);
        let sealed = seal(&old, "obj", &plain).unwrap();
        let rotated = Keys::parse(K2, Some(K1)).unwrap();
        // Readable before re-wrapping through the previous key.
        assert_eq!(open(&rotated, "obj", &sealed).unwrap(), plain);
        let re = rewrap(&rotated, "obj", &sealed).unwrap().unwrap();
        assert_eq!(re.len(), sealed.len());
        assert_eq!(&re[HEADER..], &sealed[HEADER..], "body untouched");
        assert!(
            rewrap(&rotated, "obj", &re).unwrap().is_none(),
            "idempotent"
        );
        // The old key can be dropped now.
        let only_new = Keys::parse(K2, None).unwrap();
        assert_eq!(open(&only_new, "obj", &re).unwrap(), plain);
        assert!(open(&only_new, "obj", &sealed).is_err());
    }
}
