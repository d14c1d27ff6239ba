//! Key Vault keys: create, get, wrapkey and unwrapkey (RSA-OAEP-256, RSA-OAEP and
//! A256KW), answering in Key Vault's JSON shapes. Key material stays in the emulator.

use std::collections::BTreeMap;

use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der, PublicKeyX509Der};
use aws_lc_rs::key_wrap::{AES_256, KeyEncryptionKey, KeyWrap};
use aws_lc_rs::rsa::{
    KeySize, OAEP_SHA1_MGF1SHA1, OAEP_SHA256_MGF1SHA256, OaepAlgorithm, OaepPrivateDecryptingKey,
    OaepPublicEncryptingKey, PrivateDecryptingKey,
};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::error::{ApiError, ApiResult};

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct KeyVersion {
    pub version: String,
    /// "RSA" or "oct".
    pub kty: String,
    /// base64: PKCS#8 DER for RSA, raw bytes for oct.
    pub material: String,
    pub created: i64,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Vault {
    /// Lower-case key name -> versions, oldest first.
    pub keys: BTreeMap<String, Vec<KeyVersion>>,
}

fn kv_error(status: u16, code: &str, message: String) -> ApiError {
    ApiError::new(status, code, message.clone())
        .with_body(json!({"error": {"code": code, "message": message}}))
}

fn key_not_found(name: &str, version: Option<&str>) -> ApiError {
    let what = match version {
        Some(v) if !v.is_empty() => {
            format!("A key with (name/id) {name}/{v} was not found in this key vault.")
        }
        _ => format!("A key with (name/id) {name} was not found in this key vault."),
    };
    kv_error(
        404,
        "KeyNotFound",
        format!(
            "{what} If you recently deleted this key you may be able to recover it using the correct recovery command. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182"
        ),
    )
}

fn bad_parameter(message: &str) -> ApiError {
    kv_error(400, "BadParameter", message.to_string())
}

impl Vault {
    pub fn create(&mut self, vault_url: &str, name: &str, request: &Value) -> ApiResult<Value> {
        crate::kinds::check_dashed_name(name, "Key").or_else(|_| {
            if name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !name.is_empty()
                && name.len() <= 127
            {
                Ok(())
            } else {
                Err(bad_parameter(
                    "Key name must be 1-127 characters: letters, digits and dashes.",
                ))
            }
        })?;
        let kty = request.get("kty").and_then(Value::as_str).unwrap_or("RSA");
        let (kty, material) = match kty {
            "RSA" | "RSA-HSM" => {
                let size = match request
                    .get("key_size")
                    .and_then(Value::as_u64)
                    .unwrap_or(2048)
                {
                    2048 => KeySize::Rsa2048,
                    3072 => KeySize::Rsa3072,
                    4096 => KeySize::Rsa4096,
                    other => {
                        return Err(bad_parameter(&format!(
                            "Unsupported RSA key size {other}; use 2048, 3072 or 4096."
                        )));
                    }
                };
                let key = PrivateDecryptingKey::generate(size)
                    .map_err(|_| kv_error(500, "InternalError", "key generation failed".into()))?;
                let der: Pkcs8V1Der = key
                    .as_der()
                    .map_err(|_| kv_error(500, "InternalError", "key encoding failed".into()))?;
                ("RSA", STANDARD.encode(der.as_ref()))
            }
            "oct" | "oct-HSM" => {
                let mut bytes = [0u8; 32];
                rand::Rng::fill(&mut rand::rng(), &mut bytes);
                ("oct", STANDARD.encode(bytes))
            }
            other => {
                return Err(bad_parameter(&format!(
                    "The key type '{other}' is not supported; use RSA or oct."
                )));
            }
        };
        let version = uuid::Uuid::new_v4().simple().to_string();
        let entry = KeyVersion {
            version,
            kty: kty.into(),
            material,
            created: time::OffsetDateTime::now_utc().unix_timestamp(),
        };
        let bundle = bundle(vault_url, name, &entry);
        self.keys
            .entry(name.to_ascii_lowercase())
            .or_default()
            .push(entry);
        Ok(bundle)
    }

    fn find(&self, name: &str, version: Option<&str>) -> ApiResult<&KeyVersion> {
        let versions = self
            .keys
            .get(&name.to_ascii_lowercase())
            .ok_or_else(|| key_not_found(name, version))?;
        match version.filter(|v| !v.is_empty()) {
            None => versions.last(),
            Some(v) => versions.iter().find(|k| k.version.eq_ignore_ascii_case(v)),
        }
        .ok_or_else(|| key_not_found(name, version))
    }

    pub fn get(&self, vault_url: &str, name: &str, version: Option<&str>) -> ApiResult<Value> {
        Ok(bundle(vault_url, name, self.find(name, version)?))
    }

    /// `wrap == true`: wrapkey, else unwrapkey.
    pub fn wrap(
        &self,
        vault_url: &str,
        name: &str,
        version: Option<&str>,
        request: &Value,
        wrap: bool,
    ) -> ApiResult<Value> {
        let key = self.find(name, version)?;
        let alg = request
            .get("alg")
            .and_then(Value::as_str)
            .ok_or_else(|| bad_parameter("The request must name an algorithm in 'alg'."))?;
        let input = request
            .get("value")
            .and_then(Value::as_str)
            .and_then(|v| URL_SAFE_NO_PAD.decode(v.trim_end_matches('=')).ok())
            .ok_or_else(|| {
                bad_parameter("The request must carry base64url-encoded bytes in 'value'.")
            })?;
        let material = STANDARD
            .decode(&key.material)
            .map_err(|_| kv_error(500, "InternalError", "corrupt key material".into()))?;
        let output = match (key.kty.as_str(), alg) {
            ("RSA", "RSA-OAEP-256") => rsa(&material, &OAEP_SHA256_MGF1SHA256, &input, wrap)?,
            ("RSA", "RSA-OAEP") => rsa(&material, &OAEP_SHA1_MGF1SHA1, &input, wrap)?,
            ("oct", "A256KW") => aes_kw(&material, &input, wrap)?,
            (kty, alg) => {
                return Err(bad_parameter(&format!(
                    "Algorithm '{alg}' is not supported for key type '{kty}' (RSA: RSA-OAEP-256, RSA-OAEP; oct: A256KW)."
                )));
            }
        };
        Ok(
            json!({"kid": kid(vault_url, name, &key.version), "value": URL_SAFE_NO_PAD.encode(output)}),
        )
    }
}

fn rsa(pkcs8: &[u8], alg: &'static OaepAlgorithm, input: &[u8], wrap: bool) -> ApiResult<Vec<u8>> {
    let failed =
        || bad_parameter("The operation failed: the input does not fit this key and algorithm.");
    let private = PrivateDecryptingKey::from_pkcs8(pkcs8)
        .map_err(|_| kv_error(500, "InternalError", "corrupt RSA key".into()))?;
    if wrap {
        let public = OaepPublicEncryptingKey::new(private.public_key()).map_err(|_| failed())?;
        let mut out = vec![0u8; public.ciphertext_size()];
        let n = public
            .encrypt(alg, input, &mut out, None)
            .map_err(|_| failed())?
            .len();
        out.truncate(n);
        Ok(out)
    } else {
        let private = OaepPrivateDecryptingKey::new(private).map_err(|_| failed())?;
        let mut out = vec![0u8; private.min_output_size()];
        let n = private
            .decrypt(alg, input, &mut out, None)
            .map_err(|_| failed())?
            .len();
        out.truncate(n);
        Ok(out)
    }
}

fn aes_kw(key: &[u8], input: &[u8], wrap: bool) -> ApiResult<Vec<u8>> {
    let failed = || {
        bad_parameter(
            "The operation failed: the input is not valid for A256KW (a multiple of 8 bytes, at least 16).",
        )
    };
    let kek = KeyEncryptionKey::new(&AES_256, key)
        .map_err(|_| kv_error(500, "InternalError", "corrupt oct key".into()))?;
    let mut out = vec![0u8; input.len() + 8];
    let n = if wrap {
        kek.wrap(input, &mut out).map_err(|_| failed())?.len()
    } else {
        kek.unwrap(input, &mut out).map_err(|_| failed())?.len()
    };
    out.truncate(n);
    Ok(out)
}

fn kid(vault_url: &str, name: &str, version: &str) -> String {
    format!("{}/keys/{name}/{version}", vault_url.trim_end_matches('/'))
}

fn bundle(vault_url: &str, name: &str, key: &KeyVersion) -> Value {
    let mut jwk = json!({
        "kid": kid(vault_url, name, &key.version),
        "kty": key.kty,
        "key_ops": ["wrapKey", "unwrapKey", "encrypt", "decrypt"],
    });
    if key.kty == "RSA"
        && let Some((n, e)) = STANDARD
            .decode(&key.material)
            .ok()
            .and_then(|der| rsa_public_components(&der))
    {
        jwk["n"] = URL_SAFE_NO_PAD.encode(n).into();
        jwk["e"] = URL_SAFE_NO_PAD.encode(e).into();
    }
    json!({
        "key": jwk,
        "attributes": {"enabled": true, "created": key.created, "updated": key.created, "recoveryLevel": "Recoverable+Purgeable", "recoverableDays": 90},
    })
}

/// Modulus and exponent, from the SubjectPublicKeyInfo DER of the key's public half.
fn rsa_public_components(pkcs8: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    let private = PrivateDecryptingKey::from_pkcs8(pkcs8).ok()?;
    let spki: PublicKeyX509Der = private.public_key().as_der().ok()?;
    // SEQUENCE { SEQUENCE { algorithm }, BIT STRING { 0x00, SEQUENCE { INTEGER n, INTEGER e } } }
    let (outer, _) = der_item(spki.as_ref(), 0x30)?;
    let (_, rest) = der_item(outer, 0x30)?;
    let (bits, _) = der_item(rest, 0x03)?;
    let (rsa_key, _) = der_item(bits.get(1..)?, 0x30)?;
    let (n, rest) = der_item(rsa_key, 0x02)?;
    let (e, _) = der_item(rest, 0x02)?;
    let strip = |v: &[u8]| {
        v.iter()
            .skip_while(|b| **b == 0)
            .copied()
            .collect::<Vec<u8>>()
    };
    Some((strip(n), strip(e)))
}

/// One DER TLV with the expected tag: (contents, remainder).
fn der_item(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    if *input.first()? != tag {
        return None;
    }
    let first = *input.get(1)?;
    let (len, header) = if first < 0x80 {
        (usize::from(first), 2)
    } else {
        let count = usize::from(first & 0x7f);
        let bytes = input.get(2..2 + count)?;
        (
            bytes
                .iter()
                .fold(0usize, |acc, b| (acc << 8) | usize::from(*b)),
            2 + count,
        )
    };
    let body = input.get(header..header + len)?;
    Some((body, &input[header + len..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rsa_and_aes_keys_wrap_and_unwrap() {
        let mut vault = Vault::default();
        let url = "https://127.0.0.1:1";
        let bundle = vault
            .create(url, "kek", &json!({"kty": "RSA", "key_size": 2048}))
            .expect("create");
        assert_eq!(bundle["key"]["e"], "AQAB");
        vault
            .create(url, "sym", &json!({"kty": "oct"}))
            .expect("create oct");
        let dek = URL_SAFE_NO_PAD.encode([7u8; 32]);
        for (name, alg) in [
            ("kek", "RSA-OAEP-256"),
            ("kek", "RSA-OAEP"),
            ("sym", "A256KW"),
        ] {
            let wrapped = vault
                .wrap(url, name, None, &json!({"alg": alg, "value": dek}), true)
                .expect("wrap");
            assert_ne!(wrapped["value"], dek);
            let unwrapped = vault
                .wrap(
                    url,
                    name,
                    None,
                    &json!({"alg": alg, "value": wrapped["value"]}),
                    false,
                )
                .expect("unwrap");
            assert_eq!(unwrapped["value"], dek, "{alg}");
        }
        let err = vault
            .wrap(
                url,
                "kek",
                Some("nope"),
                &json!({"alg": "RSA-OAEP-256", "value": dek}),
                true,
            )
            .unwrap_err();
        assert_eq!(err.status, 404);
    }
}
