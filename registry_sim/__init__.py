"""A provincial credit-registry simulator (REST JSON, HMAC-signed, idempotent), documented in
docs/registry-api.md; used by the tests, the quickstart and the push benchmark."""
