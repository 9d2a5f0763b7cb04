//! AWS Signature Version 4 for the EC2 Query API: a form-encoded `POST /` signed in the
//! `Authorization` header. Pure: the time and the credentials are passed in.

use hmac::{Hmac, Mac};
use jiff::Timestamp;
use sha2::{Digest, Sha256};

/// The content type of every Query API request (part of the signature).
pub const CONTENT_TYPE: &str = "application/x-www-form-urlencoded; charset=utf-8";

/// What signs a request.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// Access key id.
    pub access_key_id: String,
    /// Secret access key.
    pub secret_access_key: String,
    /// Session token of temporary credentials.
    pub session_token: Option<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// The headers to send with a signed `POST /` besides `Host` and `Content-Type`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed {
    /// `X-Amz-Date`.
    pub amz_date: String,
    /// `X-Amz-Security-Token`, for temporary credentials.
    pub security_token: Option<String>,
    /// `Authorization`.
    pub authorization: String,
}

fn hmac(key: &[u8], data: &str) -> Vec<u8> {
    // HMAC accepts a key of any length, so this cannot fail.
    let mut mac = match Hmac::<Sha256>::new_from_slice(key) {
        Ok(mac) => mac,
        Err(_) => return Vec::new(),
    };
    mac.update(data.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

/// Signs `POST /` with `body` to `host` (as sent in the `Host` header, with its port when not
/// the scheme's default) for `service` in `region` at `now`.
pub fn sign_post(
    credentials: &Credentials,
    region: &str,
    service: &str,
    host: &str,
    body: &str,
    now: Timestamp,
) -> Signed {
    let amz_date = now.strftime("%Y%m%dT%H%M%SZ").to_string();
    let date = &amz_date[..8];
    let mut headers = vec![
        ("content-type", CONTENT_TYPE.to_owned()),
        ("host", host.trim().to_owned()),
        ("x-amz-date", amz_date.clone()),
    ];
    if let Some(token) = &credentials.session_token {
        headers.push(("x-amz-security-token", token.trim().to_owned()));
    }
    let signed_headers = headers
        .iter()
        .map(|(name, _)| *name)
        .collect::<Vec<_>>()
        .join(";");
    let canonical_headers: String = headers
        .iter()
        .map(|(name, value)| format!("{name}:{value}\n"))
        .collect();
    let canonical_request = format!(
        "POST\n/\n\n{canonical_headers}\n{signed_headers}\n{}",
        hex::encode(Sha256::digest(body.as_bytes()))
    );
    let scope = format!("{date}/{region}/{service}/aws4_request");
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        hex::encode(Sha256::digest(canonical_request.as_bytes()))
    );
    let key = hmac(
        format!("AWS4{}", credentials.secret_access_key).as_bytes(),
        date,
    );
    let key = hmac(&key, region);
    let key = hmac(&key, service);
    let key = hmac(&key, "aws4_request");
    let signature = hex::encode(hmac(&key, &string_to_sign));
    Signed {
        authorization: format!(
            "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed_headers}, Signature={signature}",
            credentials.access_key_id
        ),
        amz_date,
        security_token: credentials.session_token.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example(token: Option<&str>) -> Credentials {
        Credentials {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
            session_token: token.map(str::to_owned),
        }
    }

    #[test]
    fn the_documented_iam_example_signs_as_aws_says() {
        // AWS's Signature Version 4 example: IAM ListUsers on 2011-09-09 at 23:36 UTC.
        let signed = sign_post(
            &example(None),
            "us-east-1",
            "iam",
            "iam.amazonaws.com",
            "Action=ListUsers&Version=2010-05-08",
            "2011-09-09T23:36:00Z".parse().unwrap(),
        );
        assert_eq!(signed.amz_date, "20110909T233600Z");
        assert_eq!(
            signed.authorization,
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20110909/us-east-1/iam/aws4_request, \
             SignedHeaders=content-type;host;x-amz-date, \
             Signature=ced6826de92d2bdeed8f846f0bf508e8559e98e4b0199114b84c54174deb456c"
        );
    }

    #[test]
    fn a_session_token_and_a_port_are_signed_as_botocore_signs_them() {
        // Computed with botocore's SigV4Auth for the same request.
        let signed = sign_post(
            &example(Some("SESSIONTOKEN/abc+=")),
            "eu-west-1",
            "ec2",
            "127.0.0.1:5000",
            "Action=DescribeInstances&Version=2016-11-15",
            "2026-12-01T10:00:00Z".parse().unwrap(),
        );
        assert_eq!(signed.security_token.as_deref(), Some("SESSIONTOKEN/abc+="));
        assert_eq!(
            signed.authorization,
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261201/eu-west-1/ec2/aws4_request, \
             SignedHeaders=content-type;host;x-amz-date;x-amz-security-token, \
             Signature=6eca8c048f18f9b9837e0f9eebb0fa64f4d65d8475b7f8895f5192598c6ee23e"
        );
    }

    #[test]
    fn the_secret_never_shows_in_debug_output() {
        let shown = format!("{:?}", example(Some("tok")));
        assert!(
            !shown.contains("wJalr") && !shown.contains("tok\""),
            "{shown}"
        );
    }
}
