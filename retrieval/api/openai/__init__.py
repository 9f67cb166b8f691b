"""OpenAI-compatible ``/v1``: error shapes, request schemas, the field audit and the routes.

``routers.openai_compat`` assembles the ``/v1`` router from ``models``, ``chat`` and
``completions``; ``errors`` holds the error shape the app's handlers and middleware use under
``/v1`` (kept free of route imports, so they can import it).
"""
