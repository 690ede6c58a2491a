//! Who is asking: organisations by their API key, the operator by the operator token, both as
//! `Authorization: Bearer …`.

use actix_web::HttpRequest;
use actix_web::http::StatusCode;
use actix_web::http::header::AUTHORIZATION;
use sha2::{Digest, Sha256};
use stigmergy_store::{Organization, OrganizationDirectory};

use crate::problem::Problem;

/// The operator credential, kept as its SHA-256 so that comparing it leaks nothing useful.
#[derive(Clone)]
pub struct OperatorToken([u8; 32]);

impl OperatorToken {
    pub fn new(token: &str) -> Self {
        Self(Sha256::digest(token.trim().as_bytes()).into())
    }

    fn matches(&self, presented: &str) -> bool {
        let presented: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        presented == self.0
    }
}

impl std::fmt::Debug for OperatorToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OperatorToken(…)")
    }
}

fn unauthorized(detail: &str) -> Problem {
    Problem::new(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "Authentication required",
        detail,
    )
}

fn bearer(request: &HttpRequest) -> Result<&str, Problem> {
    let header = request
        .headers()
        .get(AUTHORIZATION)
        .ok_or_else(|| unauthorized("send Authorization: Bearer <api key>"))?;
    let value = header
        .to_str()
        .map_err(|_| unauthorized("the Authorization header is not readable text"))?;
    match value.split_once(' ') {
        Some((scheme, token))
            if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
        {
            Ok(token.trim())
        }
        _ => Err(unauthorized(
            "the Authorization header must be `Bearer <api key>`",
        )),
    }
}

/// The organisation whose API key the request carries.
pub fn organization(
    request: &HttpRequest,
    directory: &OrganizationDirectory,
) -> Result<Organization, Problem> {
    let key = bearer(request)?;
    directory
        .authenticate(key)
        .ok_or_else(|| unauthorized("the API key is not valid"))
}

/// Succeeds only for requests carrying the operator token.
pub fn operator(request: &HttpRequest, token: &OperatorToken) -> Result<(), Problem> {
    let presented = bearer(request)?;
    if token.matches(presented) {
        Ok(())
    } else {
        Err(Problem::new(
            StatusCode::FORBIDDEN,
            "operator-only",
            "Operator credential required",
            "this endpoint needs the operator token (STIGMERGY_OPERATOR_TOKEN)",
        ))
    }
}
