"""Customer care: WF05 WISMO ("where is my order") and what it reads emails with."""
