"""Releasing: the committed bundles, versioned and published to each channel.

release (what is offered) -> versioning (what it becomes) -> plan (the calls, for --dry-run)
-> publish (every channel). One module per channel, `proton` and `servicecatalog`, owns all
reading and writing of that service, for publishing and for `upgrading` alike.
"""
