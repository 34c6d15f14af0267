"""One benchmark per module. A module here defines NAME (what `run NAME`
selects) and run(ctx) -> [figure, ...], each figure a dict with at least
bench, value, unit, ref, ref_value and ratio; see ../README.md."""
