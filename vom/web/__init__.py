"""What every app's web side stands on: roles, pagination, list pages and live fragments, API base
classes, the one mapping of service errors to HTTP answers, forms, units and charts."""
