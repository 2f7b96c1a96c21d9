"""The running floor: `probe()` over a series (`runner`), split over processes and merged (`shards`), and its
tables as one object (`results.ProbeResult`)."""
