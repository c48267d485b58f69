"""GeoKR trainer and downstream evaluation."""
