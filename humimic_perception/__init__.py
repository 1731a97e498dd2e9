"""Camera capture and face perception: landmarks, head pose and action units."""
