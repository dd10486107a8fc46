"""Data: TextShapes, TextCam, video files, video folders with captions."""
