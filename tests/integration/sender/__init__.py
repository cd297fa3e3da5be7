"""The sender's integration suite. A package, so that its conftest is
imported as sender.conftest and never shadows the smtpd suite's
"conftest" module (those tests do "from conftest import ...")."""
