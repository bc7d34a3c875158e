"""One module per dashboard panel, plus the header."""
