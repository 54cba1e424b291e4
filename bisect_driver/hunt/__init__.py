"""The hunt as a stage of its own: ends -> bisect steps -> confirmation, reporting to one
event sink; the driver and the calibration simulator both run it (hunt.stage)."""
