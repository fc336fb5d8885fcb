"""The web app's pages: one module per area (operator.py, partner.py, shelter.py), each exposing
`routes(ctx: AppContext) -> list[Route]`; shared helpers in common.py; the home page in home.py."""
