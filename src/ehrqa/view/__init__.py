"""Views of cases and runs for people: plain text (``ehrqa show``), the HTML case viewer and plots."""
