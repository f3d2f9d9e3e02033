"""The write side of stock, columnar: what a reported snapshot changes in a store's levels."""
