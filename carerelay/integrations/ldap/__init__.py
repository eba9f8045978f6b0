"""LDAP / Active Directory sync: people and group memberships from the hospital's directory."""
