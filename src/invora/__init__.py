"""Python SDK for the Invora e-invoicing and billing API."""
