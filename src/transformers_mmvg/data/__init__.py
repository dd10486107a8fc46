"""Data: TextShapes, video files, video folders with captions."""
