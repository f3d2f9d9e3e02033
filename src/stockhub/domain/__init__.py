"""The domain core: plain Python rules about stock, with no framework and no I/O."""
