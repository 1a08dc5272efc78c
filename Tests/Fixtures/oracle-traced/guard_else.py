with model.trace("Hello world"):
    x = model.transformer.h[1].output[0]
    if x.max() > 1000.0:
        big = x.save()
        print("big branch")
    else:
        small = x[0, -1, :2].save()
        print("small branch")
    done = model.lm_head.output[0, -1, :3].save()
print("big" in dir(), small.shape, done.shape)
