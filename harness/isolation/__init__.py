"""Running a method apart from the harness: the bubblewrap sandbox and its fork server, the method
workers, the in-process method call, and how plugins are imported and described.
"""
