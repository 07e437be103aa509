"""The CSM's side of the reset: record a district's requested date with the rules checked at
once (`requests`), and write and send every district its reset notice (`notices`)."""
