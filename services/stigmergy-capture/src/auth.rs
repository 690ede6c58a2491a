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

/// The text of the request's `Authorization` header, if it has one.
fn authorization(request: &HttpRequest) -> Result<Option<&str>, Problem> {
    request
        .headers()
        .get(AUTHORIZATION)
        .map(|value| {
            value
                .to_str()
                .map_err(|_| unauthorized("the Authorization header is not readable text"))
        })
        .transpose()
}

fn bearer(request: &HttpRequest) -> Result<&str, Problem> {
    bearer_token(authorization(request)?)
}

/// The token of an `Authorization: Bearer <token>` header's value.
fn bearer_token(authorization: Option<&str>) -> Result<&str, Problem> {
    let value =
        authorization.ok_or_else(|| unauthorized("send Authorization: Bearer <api key>"))?;
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
    organization_of(authorization(request)?, directory)
}

/// The organisation whose API key an `Authorization` header's value carries (`None`: there is
/// no header).
pub fn organization_of(
    authorization: Option<&str>,
    directory: &OrganizationDirectory,
) -> Result<Organization, Problem> {
    directory
        .authenticate(bearer_token(authorization)?)
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
