//! The vault of one tenant: secrets encrypted with XChaCha20-Poly1305 under a key derived with
//! Argon2id from a passphrase (parameters recorded by `init`), each ciphertext in slot 0 of its
//! event's record and bound to tenant, name and version as associated data (W13). The view
//! holds metadata, where each current ciphertext lives, the records whose ciphertext must be
//! erased (deleted secrets, rotated-out versions) and the audit trail; no plaintext ever
//! enters an event, a view or an error message.

use std::collections::BTreeMap;

use argon2::{Algorithm, Argon2, Params, Version};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;
use serde_json::{json, Value};

use super::event::{check_name, Event, Family, Fields};
use crate::format::{hash_from_hex, hex};

/// Argon2id memory cost in KiB (OWASP's minimum configuration: 19 MiB, 2 passes, 1 lane).
pub const ARGON2_M_KIB: u32 = 19 * 1024;
/// Argon2id passes.
pub const ARGON2_T: u32 = 2;
/// Argon2id lanes.
pub const ARGON2_P: u32 = 1;
/// The plaintext of the passphrase verifier sealed at `init`.
const VERIFIER: &[u8] = b"meshflow vault v1 passphrase verifier";
/// Longest secret value, in bytes.
pub const VALUE_MAX: usize = 64 << 10;

/// The key-derivation parameters recorded at `init`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct KdfParams {
    /// Memory, KiB.
    pub m_kib: u32,
    /// Passes.
    pub t: u32,
    /// Lanes.
    pub p: u32,
    /// 32 random bytes.
    pub salt: [u8; 32],
    /// The verifier sealed under the derived key (nonce ‖ ciphertext).
    pub verifier: Vec<u8>,
}

/// Why a vault operation failed before anything was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VaultError {
    /// The passphrase does not open the vault (or the data is damaged).
    WrongPassphrase,
    /// Anything else: bad parameters, no vault, a value too long.
    Invalid(String),
}

impl std::fmt::Display for VaultError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            VaultError::WrongPassphrase => {
                f.write_str("decryption failed: wrong passphrase or corrupted data")
            }
            VaultError::Invalid(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for VaultError {}

/// A derived vault key (zeroed when dropped).
pub struct VaultKey([u8; 32]);

impl Drop for VaultKey {
    fn drop(&mut self) {
        self.0 = [0; 32];
    }
}

impl std::fmt::Debug for VaultKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("VaultKey(…)")
    }
}

fn derive(
    passphrase: &[u8],
    m_kib: u32,
    t: u32,
    p: u32,
    salt: &[u8],
) -> Result<VaultKey, VaultError> {
    let params = Params::new(m_kib, t, p, Some(32))
        .map_err(|e| VaultError::Invalid(format!("Argon2id parameters: {e}")))?;
    let mut key = [0u8; 32];
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password_into(passphrase, salt, &mut key)
        .map_err(|e| VaultError::Invalid(format!("Argon2id: {e}")))?;
    Ok(VaultKey(key))
}

fn seal(key: &VaultKey, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, VaultError> {
    let cipher = XChaCha20Poly1305::new((&key.0).into());
    let mut nonce = [0u8; 24];
    rand::rng().fill_bytes(&mut nonce);
    let ct = cipher
        .encrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: plaintext,
                aad,
            },
        )
        .map_err(|_| VaultError::Invalid("encryption failed".to_string()))?;
    let mut out = nonce.to_vec();
    out.extend_from_slice(&ct);
    Ok(out)
}

fn open(key: &VaultKey, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, VaultError> {
    if sealed.len() < 24 {
        return Err(VaultError::WrongPassphrase);
    }
    let (nonce, ct) = sealed.split_at(24);
    XChaCha20Poly1305::new((&key.0).into())
        .decrypt(XNonce::from_slice(nonce), Payload { msg: ct, aad })
        .map_err(|_| VaultError::WrongPassphrase)
}

fn verifier_aad(tenant: &str) -> Vec<u8> {
    let mut aad = b"meshflow/vault/v1/verifier\0".to_vec();
    aad.extend_from_slice(tenant.as_bytes());
    aad
}

/// The associated data a secret's ciphertext is bound to: tenant, name and version.
pub fn secret_aad(tenant: &str, name: &str, version: u64) -> Vec<u8> {
    let mut aad = b"meshflow/vault/v1/secret\0".to_vec();
    aad.extend_from_slice(tenant.as_bytes());
    aad.push(0);
    aad.extend_from_slice(name.as_bytes());
    aad.push(0);
    aad.extend_from_slice(&version.to_le_bytes());
    aad
}

impl KdfParams {
    /// New parameters for `tenant`'s vault: a random salt and the verifier sealed under the
    /// key derived from `passphrase`.
    pub fn create(tenant: &str, passphrase: &[u8]) -> Result<(KdfParams, VaultKey), VaultError> {
        if passphrase.is_empty() {
            return Err(VaultError::Invalid(
                "the vault passphrase is empty".to_string(),
            ));
        }
        let mut salt = [0u8; 32];
        rand::rng().fill_bytes(&mut salt);
        let key = derive(passphrase, ARGON2_M_KIB, ARGON2_T, ARGON2_P, &salt)?;
        let verifier = seal(&key, &verifier_aad(tenant), VERIFIER)?;
        Ok((
            KdfParams {
                m_kib: ARGON2_M_KIB,
                t: ARGON2_T,
                p: ARGON2_P,
                salt,
                verifier,
            },
            key,
        ))
    }

    /// The key for `passphrase`, if it opens the verifier.
    pub fn unlock(&self, tenant: &str, passphrase: &[u8]) -> Result<VaultKey, VaultError> {
        let key = derive(passphrase, self.m_kib, self.t, self.p, &self.salt)?;
        match open(&key, &verifier_aad(tenant), &self.verifier) {
            Ok(v) if v == VERIFIER => Ok(key),
            _ => Err(VaultError::WrongPassphrase),
        }
    }
}

/// Seals a secret value for `tenant`/`name`/`version`.
pub fn seal_value(
    key: &VaultKey,
    tenant: &str,
    name: &str,
    version: u64,
    value: &[u8],
) -> Result<Vec<u8>, VaultError> {
    if value.len() > VALUE_MAX {
        return Err(VaultError::Invalid(format!(
            "a secret value is at most {VALUE_MAX} bytes"
        )));
    }
    seal(key, &secret_aad(tenant, name, version), value)
}

/// Opens a secret's ciphertext; a ciphertext moved to another name, version or tenant fails.
pub fn open_value(
    key: &VaultKey,
    tenant: &str,
    name: &str,
    version: u64,
    sealed: &[u8],
) -> Result<Vec<u8>, VaultError> {
    open(key, &secret_aad(tenant, name, version), sealed)
}

/// A secret's metadata (the reference's shape) and where its ciphertext is.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Secret {
    /// Id.
    pub secret_id: String,
    /// Unique name in the tenant.
    pub name: String,
    /// Category (`generic` by default).
    pub category: String,
    /// Free text.
    pub description: String,
    /// Who stored it.
    pub created_by: String,
    /// Unix seconds.
    pub created_at: f64,
    /// When it was last rotated.
    pub rotated_at: Option<f64>,
    /// Version of the current value (1, then one more per rotation).
    pub version: u64,
    /// Offset of the record whose slot 0 holds the current ciphertext.
    pub offset: u64,
}

impl Secret {
    /// Metadata only: `{secret_id, name, category, description, created_by, created_at,
    /// rotated_at, version}`.
    pub fn to_json(&self) -> Value {
        json!({
            "secret_id": self.secret_id,
            "name": self.name,
            "category": self.category,
            "description": self.description,
            "created_by": self.created_by,
            "created_at": self.created_at,
            "rotated_at": self.rotated_at,
            "version": self.version,
        })
    }
}

/// One audit entry.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AuditEntry {
    /// Id.
    pub audit_id: String,
    /// The secret's id (empty when the attempt named no existing secret).
    pub secret_id: String,
    /// The secret's name.
    pub secret_name: String,
    /// Who.
    pub accessed_by: String,
    /// `init`, `write`, `read`, `rotate`, `delete`, or `read_denied` / `write_denied` /
    /// `rotate_denied` / `delete_denied` (a wrong passphrase).
    pub operation: String,
    /// Unix seconds.
    pub ts: f64,
}

impl AuditEntry {
    /// The reference's shape.
    pub fn to_json(&self) -> Value {
        json!({
            "audit_id": self.audit_id,
            "secret_id": self.secret_id,
            "secret_name": self.secret_name,
            "accessed_by": self.accessed_by,
            "operation": self.operation,
            "ts": self.ts,
        })
    }
}

/// One tenant's vault.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub struct VaultState {
    kdf: Option<KdfParams>,
    secrets: BTreeMap<String, Secret>,
    audit: Vec<AuditEntry>,
    /// Records whose ciphertext must be erased (deleted secrets, rotated-out versions).
    retired: Vec<u64>,
}

impl VaultState {
    /// The key-derivation parameters, once initialised.
    pub fn kdf(&self) -> Option<&KdfParams> {
        self.kdf.as_ref()
    }

    /// A live secret.
    pub fn secret(&self, name: &str) -> Option<&Secret> {
        self.secrets.get(name)
    }

    /// Live secrets, newest first (of one category when not empty).
    pub fn list(&self, category: &str) -> Vec<&Secret> {
        let mut out: Vec<&Secret> = self
            .secrets
            .values()
            .filter(|s| category.is_empty() || s.category == category)
            .collect();
        out.sort_by(|a, b| {
            b.created_at
                .total_cmp(&a.created_at)
                .then(b.offset.cmp(&a.offset))
        });
        out
    }

    /// The audit trail, newest first (of one secret name when not empty), at most `limit`.
    pub fn audit(&self, name: &str, limit: usize) -> Vec<&AuditEntry> {
        self.audit
            .iter()
            .rev()
            .filter(|a| name.is_empty() || a.secret_name == name)
            .take(limit)
            .collect()
    }

    /// Every audit entry, oldest first.
    pub fn all_audit(&self) -> &[AuditEntry] {
        &self.audit
    }

    /// Records whose ciphertext slot must be erased.
    pub fn retired(&self) -> &[u64] {
        &self.retired
    }

    /// Checks `event` against this state.
    pub fn check(&self, event: &Event) -> Result<(), String> {
        let f = Fields(&event.body);
        match event.op() {
            "init" => {
                if self.kdf.is_some() {
                    return Err("the vault is already initialised".to_string());
                }
                kdf_of(&f).map(|_| ())
            }
            "put" => {
                if self.kdf.is_none() {
                    return Err("the vault is not initialised (meshflow vault init)".to_string());
                }
                let name = f.str("name")?;
                check_name("a secret name", name)?;
                if self.secrets.contains_key(name) {
                    return Err(format!("a secret named '{name}' exists"));
                }
                audit_of(&f, "write", "")?;
                f.str("secret_id")?;
                f.f64("created_at")?;
                Ok(())
            }
            "rotate" | "delete" => {
                let name = f.str("name")?;
                let secret = self
                    .secrets
                    .get(name)
                    .ok_or_else(|| format!("no secret '{name}'"))?;
                if event.op() == "rotate" && f.i64("version")? != secret.version as i64 + 1 {
                    return Err(format!(
                        "secret '{name}' is at version {}; a rotation makes version {}",
                        secret.version,
                        secret.version + 1
                    ));
                }
                audit_of(&f, event.op(), "").map(|_| ())
            }
            "access" => {
                let operation = f.str("operation")?;
                if ![
                    "read",
                    "read_denied",
                    "write_denied",
                    "rotate_denied",
                    "delete_denied",
                ]
                .contains(&operation)
                {
                    return Err(format!("unknown vault access '{operation}'"));
                }
                if operation == "read" && !self.secrets.contains_key(f.str("name")?) {
                    return Err(format!("no secret '{}'", f.str("name")?));
                }
                audit_of(&f, operation, "").map(|_| ())
            }
            other => Err(format!("unknown vault op '{other}'")),
        }
    }

    /// Applies a checked event at `offset` (the record holding any ciphertext).
    pub fn apply(&mut self, event: &Event, offset: u64) -> Result<(), String> {
        self.check(event)?;
        let f = Fields(&event.body);
        match event.op() {
            "init" => {
                self.kdf = Some(kdf_of(&f)?);
                self.audit.push(audit_of(&f, "init", "")?);
            }
            "put" => {
                let name = f.str("name")?.to_string();
                let secret = Secret {
                    secret_id: f.str("secret_id")?.to_string(),
                    name: name.clone(),
                    category: f.opt_str("category")?.unwrap_or("generic").to_string(),
                    description: f.opt_str("description")?.unwrap_or("").to_string(),
                    created_by: f.opt_str("accessed_by")?.unwrap_or("").to_string(),
                    created_at: f.f64("created_at")?,
                    rotated_at: None,
                    version: 1,
                    offset,
                };
                self.audit.push(audit_of(&f, "write", &secret.secret_id)?);
                self.secrets.insert(name, secret);
            }
            "rotate" => {
                let name = f.str("name")?;
                let entry = audit_of(&f, "rotate", "")?;
                if let Some(s) = self.secrets.get_mut(name) {
                    self.retired.push(s.offset);
                    s.offset = offset;
                    s.version += 1;
                    s.rotated_at = Some(entry.ts);
                    self.audit.push(AuditEntry {
                        secret_id: s.secret_id.clone(),
                        ..entry
                    });
                }
            }
            "delete" => {
                let name = f.str("name")?;
                let entry = audit_of(&f, "delete", "")?;
                if let Some(s) = self.secrets.remove(name) {
                    self.retired.push(s.offset);
                    self.audit.push(AuditEntry {
                        secret_id: s.secret_id,
                        ..entry
                    });
                }
            }
            "access" => {
                let operation = f.str("operation")?.to_string();
                let id = self
                    .secrets
                    .get(f.str("name")?)
                    .map(|s| s.secret_id.clone())
                    .unwrap_or_default();
                self.audit.push(audit_of(&f, &operation, &id)?);
            }
            _ => {}
        }
        Ok(())
    }
}

fn kdf_of(f: &Fields<'_>) -> Result<KdfParams, String> {
    if f.str("kdf")? != "argon2id" {
        return Err("the vault's key derivation is argon2id".to_string());
    }
    let num = |k: &str| -> Result<u32, String> {
        u32::try_from(f.i64(k)?).map_err(|_| format!("'{k}' is out of range"))
    };
    let salt = hash_from_hex(f.str("salt")?).ok_or("'salt' must be 64 hex digits")?;
    let verifier = f.str("verifier")?;
    let verifier = (0..verifier.len())
        .step_by(2)
        .map(|i| {
            verifier
                .get(i..i + 2)
                .and_then(|b| u8::from_str_radix(b, 16).ok())
        })
        .collect::<Option<Vec<u8>>>()
        .ok_or("'verifier' must be hex")?;
    Ok(KdfParams {
        m_kib: num("m_kib")?,
        t: num("t")?,
        p: num("p")?,
        salt,
        verifier,
    })
}

fn audit_of(f: &Fields<'_>, operation: &str, secret_id: &str) -> Result<AuditEntry, String> {
    Ok(AuditEntry {
        audit_id: f.str("audit_id")?.to_string(),
        secret_id: secret_id.to_string(),
        secret_name: f.opt_str("name")?.unwrap_or("").to_string(),
        accessed_by: f.opt_str("accessed_by")?.unwrap_or("").to_string(),
        operation: operation.to_string(),
        ts: f.f64("ts")?,
    })
}

/// Builders of vault events. `put` and `rotate` events travel with their ciphertext as the
/// record's slot 0.
pub mod events {
    use super::*;

    fn event(body: Value) -> Event {
        Event::from_value(Family::Vault, body)
    }

    /// Initialises a vault with these parameters.
    pub fn init(params: &KdfParams, audit_id: &str, by: &str, now: f64) -> Event {
        event(json!({
            "op": "init",
            "kdf": "argon2id",
            "m_kib": params.m_kib,
            "t": params.t,
            "p": params.p,
            "salt": hex(&params.salt),
            "verifier": hex(&params.verifier),
            "audit_id": audit_id,
            "accessed_by": by,
            "ts": now,
        }))
    }

    /// A new secret (its ciphertext is the record's slot 0).
    #[allow(clippy::too_many_arguments)]
    pub fn put(
        secret_id: &str,
        name: &str,
        category: &str,
        description: &str,
        by: &str,
        audit_id: &str,
        now: f64,
    ) -> Event {
        event(json!({
            "op": "put",
            "secret_id": secret_id,
            "name": name,
            "category": category,
            "description": description,
            "accessed_by": by,
            "audit_id": audit_id,
            "created_at": now,
            "ts": now,
        }))
    }

    /// A new value for a secret, as `version` (its ciphertext is the record's slot 0).
    pub fn rotate(name: &str, version: u64, by: &str, audit_id: &str, now: f64) -> Event {
        event(json!({
            "op": "rotate",
            "name": name,
            "version": version,
            "accessed_by": by,
            "audit_id": audit_id,
            "ts": now,
        }))
    }

    /// Deletes a secret (its ciphertexts are then erased).
    pub fn delete(name: &str, by: &str, audit_id: &str, now: f64) -> Event {
        event(json!({
            "op": "delete",
            "name": name,
            "accessed_by": by,
            "audit_id": audit_id,
            "ts": now,
        }))
    }

    /// An audited access: `read`, or a denied attempt (`read_denied`, `write_denied`, …).
    pub fn access(operation: &str, name: &str, by: &str, audit_id: &str, now: f64) -> Event {
        event(json!({
            "op": "access",
            "operation": operation,
            "name": name,
            "accessed_by": by,
            "audit_id": audit_id,
            "ts": now,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_opens_only_with_its_passphrase_tenant_name_and_version() {
        // Proves the AEAD binding (W13): a wrong passphrase is detected by the verifier, and a
        // ciphertext moved to another name, version or tenant does not open.
        let (params, key) = KdfParams::create("acme", b"pw").unwrap();
        assert!(matches!(
            params.unlock("acme", b"wrong"),
            Err(VaultError::WrongPassphrase)
        ));
        let key2 = params.unlock("acme", b"pw").unwrap();
        let sealed = seal_value(&key, "acme", "k", 1, b"val").unwrap();
        assert!(!sealed.windows(3).any(|w| w == b"val"));
        assert_eq!(open_value(&key2, "acme", "k", 1, &sealed).unwrap(), b"val");
        for (t, n, v) in [("acme", "k2", 1), ("acme", "k", 2), ("other", "k", 1)] {
            assert!(open_value(&key2, t, n, v, &sealed).is_err(), "{t} {n} {v}");
        }
        assert!(
            params.unlock("other", b"pw").is_err(),
            "the verifier is bound to the tenant"
        );
    }

    #[test]
    fn the_view_tracks_versions_audits_and_retired_ciphertexts() {
        // Proves put/rotate/delete/access bookkeeping: versions, audit order, retired records.
        let (params, _) = KdfParams::create("acme", b"pw").unwrap();
        let mut s = VaultState::default();
        assert!(s
            .check(&events::put("s1", "k", "generic", "", "me", "a0", 1.0))
            .is_err());
        s.apply(&events::init(&params, "a1", "me", 1.0), 0).unwrap();
        assert!(s.check(&events::init(&params, "a1", "me", 1.0)).is_err());
        s.apply(&events::put("s1", "k", "generic", "", "me", "a2", 2.0), 1)
            .unwrap();
        assert!(s
            .check(&events::put("s2", "k", "generic", "", "me", "a3", 3.0))
            .is_err());
        assert!(
            s.check(&events::rotate("k", 3, "me", "a4", 4.0)).is_err(),
            "version skips"
        );
        s.apply(&events::rotate("k", 2, "me", "a5", 5.0), 2)
            .unwrap();
        s.apply(&events::access("read", "k", "me", "a6", 6.0), 3)
            .unwrap();
        s.apply(&events::access("read_denied", "nope", "me", "a7", 7.0), 4)
            .unwrap();
        assert_eq!(s.secret("k").unwrap().version, 2);
        assert_eq!(s.secret("k").unwrap().offset, 2);
        s.apply(&events::delete("k", "me", "a8", 8.0), 5).unwrap();
        assert!(s.secret("k").is_none());
        assert_eq!(s.retired(), &[1, 2]);
        let ops: Vec<&str> = s
            .audit("", 10)
            .iter()
            .map(|a| a.operation.as_str())
            .collect();
        assert_eq!(
            ops,
            ["delete", "read_denied", "read", "rotate", "write", "init"]
        );
    }
}
