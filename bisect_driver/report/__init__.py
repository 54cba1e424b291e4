"""The run report.  Layers, each importing only those before it:

model (typed Report, to_json) <- text (shared sentences) <- markdown, html
<- collect (journal + git -> Report) <- write (the three files).

Nothing here imports bisect_driver.app: the report sits below the commands.
"""
