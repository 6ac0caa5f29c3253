//! weir: the client side of SASL PLAIN (RFC 4616) and SCRAM-SHA-256/512
//! (RFC 5802, RFC 7677), written here in place of rsasl, with ring's
//! HMAC, digest and PBKDF2 (already linked for TLS).
//!
//! As Kafka's Java client (`ScramFormatter`, `ScramSaslClient`): user names
//! and passwords are sent as their UTF-8 bytes, without SASLprep (the
//! broker stores credentials computed that way), the user name has `=` and
//! `,` escaped, and a server asking for fewer than 4096 iterations is
//! refused.

use std::num::NonZeroU32;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use ring::{digest, hmac, pbkdf2, rand::SecureRandom};
use thiserror::Error;

/// The password mechanisms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordMechanism {
    Plain,
    ScramSha256,
    ScramSha512,
}

impl PasswordMechanism {
    /// The name a SaslHandshake asks for.
    pub fn name(self) -> &'static str {
        match self {
            Self::Plain => "PLAIN",
            Self::ScramSha256 => "SCRAM-SHA-256",
            Self::ScramSha512 => "SCRAM-SHA-512",
        }
    }
}

/// Why an exchange stopped on the client's side.
#[derive(Debug, Error)]
pub enum MechanismError {
    #[error("the broker's SCRAM message is malformed ({0})")]
    Malformed(&'static str),
    #[error("the broker's SCRAM nonce does not extend this client's")]
    Nonce,
    #[error("the broker asks for {0} SCRAM iterations, fewer than the 4096 Kafka requires")]
    Iterations(u32),
    #[error("the broker answered with SCRAM error \"{0}\"")]
    Server(String),
    #[error("the broker's SCRAM signature does not verify: it does not know this password")]
    ServerSignature,
    #[error("the broker sent a message after the exchange ended")]
    Unexpected,
    #[error("no random bytes for the SCRAM nonce")]
    Random,
}

/// What the client does next.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// Send these bytes in a SaslAuthenticate request; its answer goes to
    /// the next `step`.
    Send(Vec<u8>),
    /// Authenticated.
    Done,
}

/// One authentication with a user name and a password.
#[derive(Debug)]
pub struct PasswordSession {
    mechanism: PasswordMechanism,
    username: String,
    password: String,
    state: State,
}

#[derive(Debug)]
enum State {
    Start,
    /// PLAIN's one message is sent.
    PlainSent,
    /// SCRAM's client-first message is sent: its bare part and nonce.
    FirstSent { bare: String, nonce: String },
    /// SCRAM's final message is sent: the signature the server must show.
    FinalSent { server_signature: Vec<u8> },
    Done,
}

impl PasswordSession {
    pub fn new(mechanism: PasswordMechanism, username: &str, password: &str) -> Self {
        Self {
            mechanism,
            username: username.to_owned(),
            password: password.to_owned(),
            state: State::Start,
        }
    }

    /// The next message, from the broker's answer to the last one (`None`
    /// before the first).
    pub fn step(&mut self, received: Option<&[u8]>) -> Result<Step, MechanismError> {
        match (std::mem::replace(&mut self.state, State::Done), received) {
            (State::Start, _) if self.mechanism == PasswordMechanism::Plain => {
                self.state = State::PlainSent;
                let mut message = Vec::with_capacity(2 + self.username.len() + self.password.len());
                message.push(0);
                message.extend_from_slice(self.username.as_bytes());
                message.push(0);
                message.extend_from_slice(self.password.as_bytes());
                Ok(Step::Send(message))
            }
            (State::Start, _) => {
                let mut random = [0u8; 18];
                ring::rand::SystemRandom::new()
                    .fill(&mut random)
                    .map_err(|_| MechanismError::Random)?;
                let nonce = BASE64.encode(random);
                let bare = format!("n={},r={nonce}", sasl_name(&self.username));
                let message = format!("n,,{bare}").into_bytes();
                self.state = State::FirstSent { bare, nonce };
                Ok(Step::Send(message))
            }
            (State::PlainSent, _) => Ok(Step::Done),
            (State::FirstSent { bare, nonce }, Some(server_first)) => {
                let (message, server_signature) =
                    self.client_final(&bare, &nonce, server_first)?;
                self.state = State::FinalSent { server_signature };
                Ok(Step::Send(message))
            }
            (State::FinalSent { server_signature }, Some(server_final)) => {
                verify_server_final(&server_signature, server_final)?;
                Ok(Step::Done)
            }
            _ => Err(MechanismError::Unexpected),
        }
    }

    /// The client-final message for the server-first one, and the server
    /// signature the server-final message must carry.
    fn client_final(
        &self,
        client_first_bare: &str,
        nonce: &str,
        server_first: &[u8],
    ) -> Result<(Vec<u8>, Vec<u8>), MechanismError> {
        let server_first = std::str::from_utf8(server_first)
            .map_err(|_| MechanismError::Malformed("not UTF-8"))?;
        let first = ServerFirst::parse(server_first)?;
        if !first.nonce.starts_with(nonce) || first.nonce.len() == nonce.len() {
            return Err(MechanismError::Nonce);
        }
        if first.iterations < 4096 {
            return Err(MechanismError::Iterations(first.iterations));
        }
        let (hmac_algorithm, digest_algorithm, pbkdf2_algorithm) = match self.mechanism {
            PasswordMechanism::ScramSha512 => {
                (hmac::HMAC_SHA512, &digest::SHA512, pbkdf2::PBKDF2_HMAC_SHA512)
            }
            _ => (hmac::HMAC_SHA256, &digest::SHA256, pbkdf2::PBKDF2_HMAC_SHA256),
        };
        let iterations = NonZeroU32::new(first.iterations).ok_or(MechanismError::Iterations(0))?;
        let mut salted = vec![0u8; digest_algorithm.output_len()];
        pbkdf2::derive(
            pbkdf2_algorithm,
            iterations,
            &first.salt,
            self.password.as_bytes(),
            &mut salted,
        );
        let salted = hmac::Key::new(hmac_algorithm, &salted);
        let client_key = hmac::sign(&salted, b"Client Key");
        let stored_key = digest::digest(digest_algorithm, client_key.as_ref());
        // c=biws: base64 of the GS2 header "n,," (no channel binding).
        let without_proof = format!("c=biws,r={}", first.nonce);
        let auth_message = format!("{client_first_bare},{server_first},{without_proof}");
        let client_signature = hmac::sign(
            &hmac::Key::new(hmac_algorithm, stored_key.as_ref()),
            auth_message.as_bytes(),
        );
        let proof: Vec<u8> = client_key
            .as_ref()
            .iter()
            .zip(client_signature.as_ref())
            .map(|(k, s)| k ^ s)
            .collect();
        let server_key = hmac::sign(&salted, b"Server Key");
        let server_signature = hmac::sign(
            &hmac::Key::new(hmac_algorithm, server_key.as_ref()),
            auth_message.as_bytes(),
        );
        let message = format!("{without_proof},p={}", BASE64.encode(proof));
        Ok((message.into_bytes(), server_signature.as_ref().to_vec()))
    }
}

/// The fields of a server-first message that the client uses.
struct ServerFirst<'a> {
    nonce: &'a str,
    salt: Vec<u8>,
    iterations: u32,
}

impl<'a> ServerFirst<'a> {
    fn parse(message: &'a str) -> Result<Self, MechanismError> {
        let (mut nonce, mut salt, mut iterations) = (None, None, None);
        for attribute in message.split(',') {
            match attribute.split_once('=') {
                Some(("m", _)) => return Err(MechanismError::Malformed("mandatory extension")),
                Some(("e", error)) => return Err(MechanismError::Server(error.to_owned())),
                Some(("r", value)) => nonce = Some(value),
                Some(("s", value)) => {
                    salt = Some(
                        BASE64
                            .decode(value)
                            .map_err(|_| MechanismError::Malformed("salt is not base64"))?,
                    )
                }
                Some(("i", value)) => {
                    iterations = Some(
                        value
                            .parse()
                            .map_err(|_| MechanismError::Malformed("iteration count"))?,
                    )
                }
                _ => {}
            }
        }
        Ok(Self {
            nonce: nonce.ok_or(MechanismError::Malformed("no nonce"))?,
            salt: salt.ok_or(MechanismError::Malformed("no salt"))?,
            iterations: iterations.ok_or(MechanismError::Malformed("no iteration count"))?,
        })
    }
}

fn verify_server_final(expected: &[u8], message: &[u8]) -> Result<(), MechanismError> {
    let message =
        std::str::from_utf8(message).map_err(|_| MechanismError::Malformed("not UTF-8"))?;
    for attribute in message.split(',') {
        match attribute.split_once('=') {
            Some(("e", error)) => return Err(MechanismError::Server(error.to_owned())),
            Some(("v", signature)) => {
                let signature = BASE64
                    .decode(signature)
                    .map_err(|_| MechanismError::Malformed("signature is not base64"))?;
                // Not secret: the server's own proof, compared once.
                return if signature == expected {
                    Ok(())
                } else {
                    Err(MechanismError::ServerSignature)
                };
            }
            _ => {}
        }
    }
    Err(MechanismError::Malformed("no server signature"))
}

/// A user name as SCRAM's `saslname`: `=` and `,` escaped.
fn sasl_name(username: &str) -> String {
    username.replace('=', "=3D").replace(',', "=2C")
}

/// OAUTHBEARER's one client message (RFC 7628, section 3.1): the GS2
/// header with the optional authorisation id, the token, then the
/// extensions as `key=value` pairs, each ended by ^A.
pub fn oauthbearer_message(token: &str, authz_id: Option<&str>, kvs: &[(String, String)]) -> Vec<u8> {
    let mut message = match authz_id {
        Some(id) => format!("n,a={},", sasl_name(id)),
        None => "n,,".to_owned(),
    };
    message.push('\u{1}');
    message.push_str("auth=Bearer ");
    message.push_str(token);
    message.push('\u{1}');
    for (key, value) in kvs {
        message.push_str(key);
        message.push('=');
        message.push_str(value);
        message.push('\u{1}');
    }
    message.push('\u{1}');
    message.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server side of SCRAM, from the RFC's definitions, to check the
    /// client against: computes what the broker would.
    fn server_exchange(mechanism: PasswordMechanism, user: &str, stored_password: &str) {
        let mut client = PasswordSession::new(mechanism, user, stored_password);
        let Step::Send(first) = client.step(None).unwrap() else {
            panic!("no first message")
        };
        let first = String::from_utf8(first).unwrap();
        let bare = first.strip_prefix("n,,").unwrap();
        assert!(bare.starts_with(&format!("n={},r=", sasl_name(user))));
        let client_nonce = bare.split_once(",r=").unwrap().1;
        let server_first = format!("r={client_nonce}SERVERPART,s=c2FsdHNhbHQ=,i=4096");
        let Step::Send(last) = client.step(Some(server_first.as_bytes())).unwrap() else {
            panic!("no final message")
        };
        let last = String::from_utf8(last).unwrap();
        let (without_proof, proof) = last.split_once(",p=").unwrap();
        assert_eq!(without_proof, format!("c=biws,r={client_nonce}SERVERPART"));

        let (h, d, p) = match mechanism {
            PasswordMechanism::ScramSha512 => {
                (hmac::HMAC_SHA512, &digest::SHA512, pbkdf2::PBKDF2_HMAC_SHA512)
            }
            _ => (hmac::HMAC_SHA256, &digest::SHA256, pbkdf2::PBKDF2_HMAC_SHA256),
        };
        let mut salted = vec![0; d.output_len()];
        pbkdf2::derive(
            p,
            NonZeroU32::new(4096).unwrap(),
            b"saltsalt",
            stored_password.as_bytes(),
            &mut salted,
        );
        let salted = hmac::Key::new(h, &salted);
        let stored_key = digest::digest(d, hmac::sign(&salted, b"Client Key").as_ref());
        let auth_message = format!("{bare},{server_first},{without_proof}");
        let signature = hmac::sign(&hmac::Key::new(h, stored_key.as_ref()), auth_message.as_bytes());
        let proof = BASE64.decode(proof).unwrap();
        let client_key: Vec<u8> = proof.iter().zip(signature.as_ref()).map(|(a, b)| a ^ b).collect();
        assert_eq!(digest::digest(d, &client_key).as_ref(), stored_key.as_ref());

        let server_key = hmac::sign(&salted, b"Server Key");
        let server_signature =
            hmac::sign(&hmac::Key::new(h, server_key.as_ref()), auth_message.as_bytes());
        let server_final = format!("v={}", BASE64.encode(server_signature.as_ref()));
        assert_eq!(client.step(Some(server_final.as_bytes())).unwrap(), Step::Done);
    }

    #[test]
    fn scram_proofs_verify_on_the_server_side() {
        server_exchange(PasswordMechanism::ScramSha256, "alice", "alice-secret");
        server_exchange(PasswordMechanism::ScramSha512, "we=ird,user", "pässwörd");
    }

    /// RFC 7677's example exchange, with its fixed client nonce.
    #[test]
    fn scram_sha256_matches_the_rfc_example() {
        let mut client = PasswordSession::new(PasswordMechanism::ScramSha256, "user", "pencil");
        client.state = State::FirstSent {
            bare: "n=user,r=rOprNGfwEbeRWgbNEkqO".to_owned(),
            nonce: "rOprNGfwEbeRWgbNEkqO".to_owned(),
        };
        // The RFC's example iterates 4096 times.
        let server_first = b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
        let Step::Send(last) = client.step(Some(server_first)).unwrap() else {
            panic!("no final message")
        };
        assert_eq!(
            String::from_utf8(last).unwrap(),
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
        );
        assert_eq!(
            client
                .step(Some(b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="))
                .unwrap(),
            Step::Done
        );
    }

    #[test]
    fn a_bad_server_is_refused() {
        let start = |m| {
            let mut c = PasswordSession::new(m, "u", "p");
            let Step::Send(first) = c.step(None).unwrap() else { panic!() };
            let nonce = String::from_utf8(first).unwrap().split_once(",r=").unwrap().1.to_owned();
            (c, nonce)
        };
        let (mut c, _) = start(PasswordMechanism::ScramSha256);
        assert!(matches!(
            c.step(Some(b"r=someoneelse,s=c2FsdA==,i=4096")),
            Err(MechanismError::Nonce)
        ));
        let (mut c, nonce) = start(PasswordMechanism::ScramSha256);
        let first = format!("r={nonce}x,s=c2FsdA==,i=1000");
        assert!(matches!(
            c.step(Some(first.as_bytes())),
            Err(MechanismError::Iterations(1000))
        ));
        let (mut c, nonce) = start(PasswordMechanism::ScramSha512);
        let first = format!("r={nonce}x,s=c2FsdA==,i=4096");
        c.step(Some(first.as_bytes())).unwrap();
        assert!(matches!(
            c.step(Some(b"v=AAAA")),
            Err(MechanismError::ServerSignature)
        ));
        let (mut c, _) = start(PasswordMechanism::ScramSha256);
        assert!(matches!(
            c.step(Some(b"e=unknown-user")),
            Err(MechanismError::Server(e)) if e == "unknown-user"
        ));
    }

    #[test]
    fn plain_and_oauthbearer_messages() {
        let mut c = PasswordSession::new(PasswordMechanism::Plain, "u", "p");
        assert_eq!(c.step(None).unwrap(), Step::Send(b"\0u\0p".to_vec()));
        assert_eq!(c.step(Some(b"")).unwrap(), Step::Done);
        assert_eq!(
            oauthbearer_message("T", None, &[]),
            b"n,,\x01auth=Bearer T\x01\x01".to_vec()
        );
        assert_eq!(
            oauthbearer_message("T", Some("a=b"), &[("k".into(), "v".into())]),
            b"n,a=a=3Db,\x01auth=Bearer T\x01k=v\x01\x01".to_vec()
        );
    }
}
