"""SCIM 2.0 service provider (RFC 7643/7644): identity providers provision people and groups."""
