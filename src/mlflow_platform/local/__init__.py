"""The platform on this machine: `invoke local` and the tests run the cloud's entrypoint here."""
