"""What the analyst and the compliance officer read: the HTML report with its charts, and the
ready questions of `analyses/`."""
