"""Where the detector looks (data/faces/search.py): the whole frame every K-th sampled frame, around the known faces in
between, the whole frame again wherever a known face is lost; the same faces as searching every frame whole, for a
fraction of the pixels, and a stated lag for a face that appears between two whole searches."""

import numpy as np
import pytest
from scipy import ndimage

from data.faces.detectors import Detection, FaceDetector
from data.faces.pipeline import detect_in_frames, faces_of_frames
from data.faces.search import WINDOW_FACE, FaceSearch
from data.faces.settings import ExtractionError, ExtractionSettings

HEIGHT, WIDTH = 360, 640


class Blobs(FaceDetector):
    """Every bright square of an image is a face (its exact box); counts the pixels it was shown."""

    name = "blobs"

    def __init__(self):
        self.pixels = 0
        self.calls = 0

    def detect(self, images, landmarks=False):
        self.calls += 1
        answers = []
        for image in images:
            self.pixels += image.shape[0] * image.shape[1]
            labels, _ = ndimage.label(image.min(axis=2) > 128)
            answers.append(
                [
                    Detection((float(s[1].start), float(s[0].start), float(s[1].stop), float(s[0].stop)), 0.9)
                    for s in ndimage.find_objects(labels)
                ]
            )
        return answers


def frame(*squares) -> np.ndarray:
    """A dark frame with white squares (x, y, side)."""
    image = np.full((HEIGHT, WIDTH, 3), 40, dtype=np.uint8)
    for x, y, side in squares:
        image[y : y + side, x : x + side] = 255
    return image


def moving(count: int, *starts) -> list[np.ndarray]:
    """``count`` frames whose squares (x, y, side) drift 3 pixels right and 1 down a frame."""
    return [frame(*[(x + 3 * i, y + i, side) for x, y, side in starts]) for i in range(count)]


def boxes(answers) -> list[list[tuple]]:
    return [sorted(tuple(round(v) for v in d.box) for d in found) for found in answers]


def search_all(frames, settings, batch=16, detector=None):
    detector = detector or Blobs()
    search = FaceSearch(detector, settings)
    answers = []
    for start in range(0, len(frames), batch):
        answers += search.detect(frames[start : start + batch])
    return answers, search, detector


def test_faces_that_stay_are_found_as_a_whole_search_finds_them_for_a_fraction_of_the_pixels():
    frames = moving(32, (100, 80, 48), (400, 150, 30))
    every_frame = ExtractionSettings(detector="blobs", detect_size=None, full_search_every=1)
    tracked = ExtractionSettings(detector="blobs", detect_size=None, full_search_every=4)
    whole, whole_search, whole_detector = search_all(frames, every_frame)
    found, search, detector = search_all(frames, tracked)
    assert boxes(found) == boxes(whole)
    assert all(len(f) == 2 for f in found)
    assert (whole_search.whole_searches, whole_search.window_searches) == (32, 0)
    assert (search.whole_searches, search.window_searches) == (8, 24)
    assert detector.pixels < 0.4 * whole_detector.pixels


@pytest.mark.parametrize("batch", [1, 3, 5, 16, 32])
def test_the_answers_do_not_depend_on_how_the_frames_are_batched(batch):
    frames = moving(13, (100, 80, 48))
    frames[6] = frame()  # a frame without a face: the next one is searched whole
    settings = ExtractionSettings(detector="blobs", detect_size=None, full_search_every=4)
    reference, reference_search, _ = search_all(frames, settings, batch=13)
    found, search, _ = search_all(frames, settings, batch=batch)
    assert boxes(found) == boxes(reference)
    assert found[6] == [] and len(found[7]) == 1
    # whole: 0, 4, 8, 12 (the schedule), 6 (its face lost) and 7 (the frame before had none); windows: 1-3, 5, 6, 9-11
    assert (search.whole_searches, search.window_searches) == (6, 8)
    assert (reference_search.whole_searches, reference_search.window_searches) == (6, 8)


def test_a_face_that_moves_out_of_its_window_is_found_in_the_same_frame_by_a_whole_search():
    frames = moving(2, (100, 80, 40)) + moving(6, (500, 250, 40))  # jumped far away at 2: lost around its old place
    settings = ExtractionSettings(detector="blobs", detect_size=None, full_search_every=8)
    found, search, _ = search_all(frames, settings)
    assert boxes(found)[2] == [(500, 250, 540, 290)]
    assert search.whole_searches == 2  # frame 0 (the schedule) and frame 2 (lost)
    assert search.window_searches == 7  # frames 1 to 7, frame 2's failed window included
    assert boxes(found)[7] == [(515, 255, 555, 295)]


def test_a_face_that_appears_between_whole_searches_is_found_at_the_next_one_at_the_latest():
    """The stated cost of searching around the known faces: a new face, while every known one is still found, waits
    for the next whole search (at most K - 1 sampled frames); with K = 1 it is found in its first frame."""
    frames = [frame((100 + 3 * i, 80, 48), *([(450, 200, 40)] if i >= 5 else [])) for i in range(12)]
    lag = ExtractionSettings(detector="blobs", detect_size=None, full_search_every=4)
    found, _, _ = search_all(frames, lag)
    assert [len(f) for f in found] == [1] * 8 + [2] * 4  # appears at 5, found at 8 (the next whole search)
    immediate = ExtractionSettings(detector="blobs", detect_size=None, full_search_every=1)
    found, _, _ = search_all(frames, immediate)
    assert [len(f) for f in found] == [1] * 5 + [2] * 7


def test_windows_are_searched_at_a_bounded_scale_and_their_boxes_come_back_in_frame_pixels():
    """A large face is looked for again at WINDOW_FACE pixels at most; with a detect size, never larger than the whole
    search sees it. Boxes and landmarks are mapped back to the full-resolution frame."""
    big = [np.kron(f, np.ones((3, 3, 1), dtype=np.uint8)) for f in moving(5, (100, 60, 100))]  # 1920x1080, 300 px face

    class Recording(Blobs):
        def __init__(self):
            super().__init__()
            self.shapes = []

        def detect(self, images, landmarks=False):
            self.shapes += [image.shape[:2] for image in images]
            answers = super().detect(images, landmarks)
            return [[Detection(d.box, d.score, np.array([[d.box[0], d.box[1]], [d.box[2], d.box[3]]])) for d in a]
                    for a in answers]

    detector = Recording()
    settings = ExtractionSettings(detector="blobs", detect_size=640, full_search_every=5)
    found = FaceSearch(detector, settings).detect(big)
    assert detector.shapes[0] == (360, 640)  # the whole frame, downscaled
    assert 3 * WINDOW_FACE - 2 <= max(detector.shapes[1]) <= 3 * WINDOW_FACE + 2  # the face at 64 px, not 100
    small = [np.kron(f, np.ones((3, 3, 1), dtype=np.uint8)) for f in moving(2, (100, 60, 40))]  # 120 px: 40 px seen
    detector.shapes = []
    FaceSearch(detector, settings).detect(small)
    assert 118 <= max(detector.shapes[1]) <= 122  # three face widths at the whole search's scale, not enlarged
    for i, answer in enumerate(found):
        [detection] = answer
        truth = np.array([3 * (100 + 3 * i), 3 * (60 + i), 3 * (200 + 3 * i), 3 * (160 + i)], dtype=float)
        assert np.abs(np.array(detection.box) - truth).max() <= 4  # a few pixels of resizing
        assert np.abs(detection.landmarks.ravel() - truth).max() <= 4


def test_two_windows_that_see_the_same_face_give_it_once():
    frames = moving(4, (200, 100, 30), (236, 104, 30))  # side by side: each window holds both faces
    settings = ExtractionSettings(detector="blobs", detect_size=None, full_search_every=4)
    found, _, _ = search_all(frames, settings)
    assert [len(f) for f in found] == [2, 2, 2, 2]


def test_the_extraction_loop_counts_the_searches_and_old_records_search_every_frame_whole():
    from data.faces.pipeline import StageSeconds

    frames = list(enumerate(moving(9, (100, 80, 48))))
    seconds = StageSeconds()
    settings = ExtractionSettings(detector="blobs", detect_size=None, full_search_every=4)
    faces = list(faces_of_frames(frames, Blobs(), settings, batch_size=4, seconds=seconds))
    assert [len(f) for _, f in faces] == [1] * 9
    assert (seconds.whole_searches, seconds.window_searches) == (3, 6)
    # detect_in_frames (benchmarks, single images) always searches whole
    assert boxes(detect_in_frames(Blobs(), [f for _, f in frames[:2]], settings)) == boxes([f for _, f in faces[:2]])
    # yunet searches around known faces by default; the other detectors search every frame whole (mtcnn alone is
    # the default before), unless asked
    assert ExtractionSettings().full_search_every == 4
    assert ExtractionSettings(detector="mtcnn").full_search_every == 1
    assert ExtractionSettings(detector="mtcnn", full_search_every=4).full_search_every == 4
    assert ExtractionSettings.from_dict(ExtractionSettings(detector="mtcnn").to_dict()).full_search_every == 1
    record = ExtractionSettings().to_dict()
    del record["full_search_every"]
    assert ExtractionSettings.from_dict(record).full_search_every == 1
    for wrong in (0, -2, 2.5, True):
        with pytest.raises(ExtractionError, match=r"full_search_every \(--full-search-every\) must be a positive"):
            ExtractionSettings(full_search_every=wrong)
