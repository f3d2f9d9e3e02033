"""The HTTP faces: thin FastAPI routers that parse, authorize, call one service and render."""
