"""Published tables (CSV) shipped as package data."""
