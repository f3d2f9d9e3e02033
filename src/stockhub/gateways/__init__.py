"""Ways in that speak other protocols than the HTTP API (the FTP/FTPS gateway)."""
