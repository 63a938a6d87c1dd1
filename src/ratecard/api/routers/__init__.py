"""One router per domain; :data:`ROUTERS` lists them in the order the app includes them."""
