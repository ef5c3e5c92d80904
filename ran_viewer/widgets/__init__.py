"""The viewer's Qt widgets, one public class per file: the main window (layout and actions), image view, side panels,
thumbnail strip, gallery, confusion matrix, evaluation view and subset browser."""
