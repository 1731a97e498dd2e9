"""Tools run by hand (offline layer): the twin's neutral face prepared from a real face image."""
