"""Single sign-on: OpenID Connect (authorization code + PKCE) and SAML 2.0 Web SSO."""
