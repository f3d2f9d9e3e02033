"""Background work, claimed from rows in the database: processing uploads, the expiry sweep."""
