//! SASL authentication on a wire connection: the handshake, then the
//! mechanism's exchange (PLAIN and SCRAM from the vendored rskafka's
//! `sasl`, OAUTHBEARER's one message here), with failures that say what
//! the broker offers.

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{SaslAuthenticateRequest, SaslHandshakeRequest};
use kafka_protocol::protocol::StrBytes;
use rskafka::sasl::{PasswordMechanism, PasswordSession, Step};

use super::error::{BearerRefusal, SaslRefusal};
use super::{BrokerConnection, WireError};
use crate::kafka::security::{BearerToken, SaslAuth, SaslMechanism, SaslOptions};

impl BrokerConnection {
    pub(super) async fn authenticate(&mut self, sasl: &SaslAuth) -> Result<(), WireError> {
        let mechanism = sasl.mechanism().as_str();
        let handshake = self
            .request(
                &SaslHandshakeRequest::default()
                    .with_mechanism(StrBytes::from_static_str(mechanism)),
            )
            .await?;
        if handshake.error_code != 0 {
            let offered: Vec<&str> = handshake.mechanisms.iter().map(|m| m.as_str()).collect();
            let refusal = handshake_refused(handshake.error_code, &offered);
            return Err(match sasl {
                SaslAuth::Password(options) => self.password_refused(options, refusal),
                SaslAuth::OAuthBearer(_) => WireError::BearerAuthentication {
                    broker: self.broker.clone(),
                    refusal: BearerRefusal {
                        refusal,
                        hint: None,
                    },
                },
            });
        }
        match sasl {
            SaslAuth::Password(options) => self.password_exchange(options).await,
            SaslAuth::OAuthBearer(tokens) => self.bearer_exchange(tokens).await,
        }
    }

    fn password_refused(&self, sasl: &SaslOptions, refusal: SaslRefusal) -> WireError {
        WireError::Authentication {
            broker: self.broker.clone(),
            mechanism: sasl.mechanism.as_str(),
            username: sasl.username.clone(),
            refusal: Box::new(refusal),
        }
    }

    /// PLAIN and SCRAM (the mechanisms are in the vendored rskafka, which
    /// uses them too).
    async fn password_exchange(&mut self, sasl: &SaslOptions) -> Result<(), WireError> {
        let mechanism = match sasl.mechanism {
            SaslMechanism::Plain => PasswordMechanism::Plain,
            SaslMechanism::ScramSha256 => PasswordMechanism::ScramSha256,
            // OAUTHBEARER with a password became a token (`connect`).
            SaslMechanism::ScramSha512 | SaslMechanism::OAuthBearer => {
                PasswordMechanism::ScramSha512
            }
        };
        let mut session = PasswordSession::new(mechanism, &sasl.username, sasl.password.expose());
        let mut received: Option<Vec<u8>> = None;
        loop {
            let step = session
                .step(received.as_deref())
                .map_err(|e| self.password_refused(sasl, SaslRefusal::NotVerified(e)))?;
            let Step::Send(message) = step else {
                return Ok(());
            };
            match self.sasl_message(message).await? {
                Ok(answer) => received = Some(answer),
                Err(refusal) => return Err(self.password_refused(sasl, refusal)),
            }
        }
    }

    /// OAUTHBEARER (RFC 7628): one message with the token. A broker that
    /// refuses it answers with an error JSON as a challenge (`{"status":
    /// "invalid_token"}`); the client must then send a lone `^A`, after
    /// which the broker fails the authentication (section 3.2.3).
    async fn bearer_exchange(&mut self, tokens: &BearerToken) -> Result<(), WireError> {
        let token = tokens.token().await.map_err(|source| WireError::NoToken {
            broker: self.broker.clone(),
            source,
        })?;
        let refused = |conn: &Self, refusal: SaslRefusal| WireError::BearerAuthentication {
            broker: conn.broker.clone(),
            refusal: BearerRefusal {
                refusal,
                hint: token.refusal_hint(std::time::SystemTime::now()),
            },
        };
        let challenge = match self.sasl_message(token.initial_response()).await? {
            Ok(answer) if answer.is_empty() => return Ok(()),
            Ok(answer) => answer,
            Err(refusal) => return Err(refused(self, refusal)),
        };
        let status = String::from_utf8_lossy(&challenge).into_owned();
        // The broker ends the exchange with its own error, which says
        // less than the challenge: the status is what is reported.
        let _ = self.sasl_message(vec![0x01]).await;
        Err(refused(self, SaslRefusal::Token { status }))
    }

    /// Sends one SASL message: the broker's answer, or its refusal.
    async fn sasl_message(
        &mut self,
        bytes: Vec<u8>,
    ) -> Result<Result<Vec<u8>, SaslRefusal>, WireError> {
        let request = SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(bytes));
        let response = match self.request(&request).await {
            Ok(r) => r,
            // Some brokers just close the connection on a bad login.
            Err(WireError::Io { .. }) => {
                return Ok(Err(SaslRefusal::Closed));
            }
            Err(e) => return Err(e),
        };
        if response.error_code != 0 {
            return Ok(Err(SaslRefusal::Refused {
                error_code: response.error_code,
                message: response.error_message.as_ref().map(|m| m.to_string()),
            }));
        }
        Ok(Ok(response.auth_bytes.to_vec()))
    }
}

/// Why a SaslHandshake was refused, from its error code and the
/// mechanisms the broker listed (empty when the listener has none, or
/// blank names from an odd broker).
fn handshake_refused(error_code: i16, offered: &[&str]) -> SaslRefusal {
    let offered: Vec<String> = offered
        .iter()
        .map(|m| m.trim())
        .filter(|m| !m.is_empty())
        .map(str::to_owned)
        .collect();
    match ResponseError::try_from_code(error_code) {
        Some(ResponseError::UnsupportedSaslMechanism) => {
            SaslRefusal::MechanismNotOffered { offered }
        }
        _ => SaslRefusal::Handshake {
            error_code,
            offered,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_sasl_handshake_says_what_the_broker_offers_if_anything() {
        let unsupported = ResponseError::UnsupportedSaslMechanism.code();
        assert_eq!(
            handshake_refused(unsupported, &["PLAIN", "SCRAM-SHA-256"]).to_string(),
            "the broker does not offer it (it offers: PLAIN, SCRAM-SHA-256)"
        );
        let none = handshake_refused(unsupported, &[]).to_string();
        assert!(!none.contains("offers: )"), "{none}");
        assert!(none.contains("names no mechanism"), "{none}");
        let blank = handshake_refused(unsupported, &["", " "]).to_string();
        assert_eq!(blank, none);
        let illegal = handshake_refused(ResponseError::IllegalSaslState.code(), &[]).to_string();
        assert!(illegal.contains("IllegalSaslState"), "{illegal}");
        assert!(illegal.contains("is this a SASL listener?"), "{illegal}");
        let unknown = handshake_refused(-2, &[]).to_string();
        assert!(unknown.contains("-2"), "{unknown}");
    }
}
