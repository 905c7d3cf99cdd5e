//! The credentials the simulators accept, and nothing else.
//!
//! The demo configuration and every test use these, so they live in one place. They are fake:
//! the key pairs in `keys/` were made for this crate and guard nothing real.

/// Okta admin API token (`Authorization: SSWS …`).
pub const OKTA_API_TOKEN: &str = "00SimDemoOktaApiToken0000000000000000000000";
/// Client id of the Okta OAuth service app that authenticates with `private_key_jwt`.
pub const OKTA_CLIENT_ID: &str = "0oasimdemoapp0000001";
/// Private key of the Okta service app (PKCS#8 PEM); the sim verifies with its public half.
pub const OKTA_PRIVATE_KEY_PEM: &str = include_str!("../keys/okta-demo-app.pem");
/// `kid` registered for the Okta service app's key.
pub const OKTA_KEY_ID: &str = "sim-okta-demo-key-1";
pub(crate) const OKTA_PUBLIC_KEY_PEM: &str = include_str!("../keys/okta-demo-app.pub.pem");

/// The Entra tenant (directory) id.
pub const ENTRA_TENANT_ID: &str = "7f3c2a10-5b8e-4d2f-9a61-0c4e8b9d1f23";
/// Application (client) id of the Entra app registration.
pub const ENTRA_CLIENT_ID: &str = "3e9f1c52-8d4a-4b7e-a0c3-5f6e7d8c9b0a";
/// Client secret value of the Entra app registration.
pub const ENTRA_CLIENT_SECRET: &str = "sIm8Q~DemoSecret.0123456789abcdefABCDEF_x";

/// Full Google service-account key file (JSON), as downloaded from the Cloud console.
pub const GOOGLE_SERVICE_ACCOUNT_JSON: &str = include_str!("../keys/google-demo-sa.json");
/// The admin the service account impersonates through domain-wide delegation.
pub const GOOGLE_ADMIN_SUBJECT: &str = "admin@example.com";
pub(crate) const GOOGLE_CLIENT_EMAIL: &str = "sever-demo@sever-sim-demo.iam.gserviceaccount.com";
pub(crate) const GOOGLE_PRIVATE_KEY_ID: &str = "5f1c0e9a7b3d2c4e6f8091a2b3c4d5e6f7a8b9c0";
pub(crate) const GOOGLE_PUBLIC_KEY_PEM: &str = include_str!("../keys/google-demo-sa.pub.pem");

/// Slack user token of an app installed org-wide with the `admin.users:write` scope.
pub const SLACK_USER_TOKEN: &str = "xoxp-5310000000001-5310000000002-5310000000003-simdemo0token";
/// Miro access token of a Company Admin.
pub const MIRO_TOKEN: &str = "eyJtaXJvLm9yaWdpbiI6ImV1MDEifQ_SimDemoMiroToken";
/// The Miro organization the token belongs to.
pub const MIRO_ORG_ID: &str = "3458764517517819000";
