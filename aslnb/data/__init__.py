"""Data layer: scan folders, split, load images, external sets, download."""
from .external import ExternalSet, load_external, map_class
from .images import check_image, frame_number, load_image, load_images
from .pipeline import DECODER, decode_files, make_dataset
from .scan import DataInfo, ImageFolder, dataset_info, drop_bad_images, find_bad_images, scan_folder
from .splits import DEFAULT_GAP, SPLIT_METHODS, Split, split_folder

__all__ = [
    "DECODER", "DEFAULT_GAP", "SPLIT_METHODS", "DataInfo", "ExternalSet", "ImageFolder", "Split", "check_image",
    "dataset_info", "decode_files", "drop_bad_images", "find_bad_images", "frame_number", "load_external", "load_image",
    "load_images", "make_dataset", "map_class", "scan_folder", "split_folder",
]
