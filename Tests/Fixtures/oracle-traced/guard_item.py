with model.trace("The Eiffel Tower is in the city of"):
    s = model.transformer.h[0].output[0].sum()
    if s.item() > 0:
        model.transformer.h[1].output[0][:, -1, :] = 0
        print("positive", round(s.item(), 2))
    elif s.item() > -1e9:
        model.transformer.h[1].output[0][:, -1, :] = 1
        print("negative", round(s.item(), 2))
    out = model.lm_head.output[0, -1].save()
print(out.shape)
