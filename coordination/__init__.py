"""How a run's roles work together across Ray: the staleness gate every role consults, the typed
handles of each role's remote surface, and the reports those surfaces return. Role packages
import it; it imports no role package (tests/test_package_seams.py)."""
