"""``stylize studio``: a local web page over the library (live tab, files tab, style sheet).

Optional extra: ``pip install 'realtime-style[studio]'`` (Starlette and uvicorn). The page is
plain HTML/JS/CSS shipped in ``static/``: no build step, no CDN, works offline.
"""
